//! Any text as a `MAPPROF` value: `Config::parse` accepts it or refuses it with an error whose
//! message can be formatted; it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(settings) = std::str::from_utf8(data) else { return };
    match mapprof::Config::default().parse(settings) {
        Ok(config) => {
            let _ = format!("{config:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
