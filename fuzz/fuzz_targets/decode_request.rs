//! Feeds arbitrary frames to the broker's request decoder: whatever arrives,
//! decoding must return (a request or an error), never panic or abort.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: weir_broker::alloc::LazyHugeAlloc = weir_broker::alloc::LazyHugeAlloc;

fuzz_target!(|data: &[u8]| {
    let _ = weir_broker::codec::decode_request(bytes::Bytes::copy_from_slice(data));
});
