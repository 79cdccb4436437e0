//! Fuzz target: arbitrary bytes as a stream of frames, each decoded as a request and as a
//! response. Nothing may panic; an encoded request or response must decode to itself.
#![no_main]

use std::sync::OnceLock;

use ddsplit::wire::{Request, Response, read_frame};
use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime starts")
    })
}

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    loop {
        match runtime().block_on(read_frame(&mut input)) {
            Ok(None) => return,
            Ok(Some((kind, payload))) => {
                if let Ok(request) = Request::decode(kind, payload.clone()) {
                    let again = request.encode().to_vec();
                    let (k, p) = runtime()
                        .block_on(read_frame(&mut &again[..]))
                        .expect("an encoded request reads back")
                        .expect("one frame");
                    assert_eq!(Request::decode(k, p).expect("and decodes"), request);
                }
                if let Ok(response) = Response::decode(kind, payload) {
                    let again = response.encode().to_vec();
                    let (k, p) = runtime()
                        .block_on(read_frame(&mut &again[..]))
                        .expect("an encoded response reads back")
                        .expect("one frame");
                    assert_eq!(Response::decode(k, p).expect("and decodes"), response);
                }
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                if !e.is_recoverable() {
                    return;
                }
            }
        }
    }
});
