//! Without `mapprof::Alloc` as the global allocator, `measure` cannot count: it says how to
//! install it.

use mapprof::testing::{measure, try_measure, MeasureError};

#[test]
fn measure_without_the_allocator_says_how_to_install_it() {
    let error = try_measure(|| Box::new(1)).unwrap_err();
    assert_eq!(error, MeasureError::NotInstalled);
    let message = error.to_string();
    assert!(message.contains("#[global_allocator]"), "{message}");
    assert!(message.contains("mapprof::Alloc::system()"), "{message}");
    let panic = std::panic::catch_unwind(|| measure(|| ()))
        .err()
        .and_then(|p| p.downcast::<String>().ok())
        .expect("measure panics");
    assert!(panic.contains("#[global_allocator]"), "{panic}");
}
