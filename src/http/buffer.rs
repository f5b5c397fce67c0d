//! Buffer: one read appended to a caller's buffer, shared by the server's connections and the
//! client's answers.

/// Reads once from `stream`, appending to `buf` after its current contents (monoio's
/// `read(Vec)` would overwrite from index 0). Ensures some spare capacity first.
pub async fn read_more(
    stream: &mut monoio::net::TcpStream,
    mut buf: Vec<u8>,
    grow_bytes: usize,
) -> (std::io::Result<usize>, Vec<u8>) {
    use monoio::{buf::IoBufMut, io::AsyncReadRent};
    if buf.capacity() - buf.len() < grow_bytes / 2 {
        buf.reserve(grow_bytes);
    }
    let len = buf.len();
    let cap = buf.capacity();
    let (read, slice) = stream.read(buf.slice_mut(len..cap)).await;
    (read, slice.into_inner())
}
