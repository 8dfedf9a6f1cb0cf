//! The fixed sizes of a request head the server reads: the listener
//! configures hyper with them, and the error a refused head gets and the
//! OpenAPI document state them.

/// The largest request head (request line and header fields) read, in
/// bytes: room for a URI of the longest length hyper takes (65,534 bytes)
/// and ordinary headers. Larger heads are refused with 431, longer URIs
/// with 414.
pub const MAX_HEAD_BYTES: usize = 80 * 1024;

/// The most header fields in one request; more are refused with 431.
pub const MAX_HEADERS: usize = 100;
