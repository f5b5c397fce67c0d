//! HTTP/1.1 codec on `httparse`: server requests in, responses out, and the client side's
//! answers read and decoded (`Content-Length` or chunked). Buffers belong to the caller, and
//! nothing here allocates but [`read_more`], which grows a caller's buffer for a read.
//!
//! - [`head`]: the one header scan behind requests and responses.
//! - [`request`], [`response`]: the server side.
//! - [`body`]: chunked bodies, framed and decoded in place.
//! - [`buffer`]: [`read_more`], one read appended to a caller's buffer.
//! - [`client`]: [`read_response`], the one reader of every answer our client gets, and
//!   [`call_once`] for rare calls on a fresh connection.
//! - [`query`]: query strings and JSON bodies.
//! - [`date`]: the `Date` header, cached per core.
//! - [`endpoint`]: an upstream's `http://host:port`, resolved once.
//!
//! Why our own codec and not `monoio-http`: see the README's "HTTP codec" section (CPU per
//! request, and that crate's client keeping dead connections in its pool).

pub mod body;
pub mod buffer;
pub mod client;
pub mod date;
pub mod endpoint;
pub mod head;
pub mod query;
pub mod request;
pub mod response;

pub use body::BadFraming;
pub use buffer::read_more;
pub use client::{
    BodyFraming, CallError, ParsedResponse, ReadError, Response, call_once, parse_response,
    read_response, take_response,
};
pub use endpoint::Endpoint;
pub use head::HEADERS_MAX;
pub use query::{BadEncoding, json_body, query_number, query_param};
pub use request::{Limits, Method, Parsed, Request, parse_request};
pub use response::{Body, JSON, PROMETHEUS_TEXT, Status, write_error_json, write_response};
