//! Buffer: one read appended to a caller's buffer, shared by the server's connections and the
//! client's answers.

/// Reads once from `stream`, appending to `buf` after its current contents (monoio's
/// `read(Vec)` would overwrite from index 0). When less than half of `grow_bytes` is free, the
/// buffer first grows by exactly `grow_bytes` (not by doubling), so it never holds more than
/// its contents plus one step: a caller whose parser refuses a message beyond its limits knows
/// the most its buffer can take. The messages read here are small (requests, processors' and
/// the peer's answers), so growing step by step costs few copies.
pub async fn read_more(
    stream: &mut monoio::net::TcpStream,
    mut buf: Vec<u8>,
    grow_bytes: usize,
) -> (std::io::Result<usize>, Vec<u8>) {
    use monoio::{buf::IoBufMut, io::AsyncReadRent};
    if buf.capacity() - buf.len() < grow_bytes / 2 {
        buf.reserve_exact(grow_bytes);
    }
    let len = buf.len();
    let cap = buf.capacity();
    let (read, slice) = stream.read(buf.slice_mut(len..cap)).await;
    (read, slice.into_inner())
}
