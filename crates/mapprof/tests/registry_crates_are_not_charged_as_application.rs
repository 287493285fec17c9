//! A third-party crate's frames are not the application's, told by where their source lives
//! (issue 17, point 5): `tempfile`, a registry crate no library list names, allocates inside
//! its own functions; in a real heap profile those frames carry cargo-registry paths and the
//! cost is charged to this test's function, a workspace crate's that no list names either.
#![cfg(feature = "jemalloc")]

mod common;

use mapprof_profile::app::{first_application_frame, AppFilter};
use mapprof_profile::view::ProfileView;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

/// Creates (and removes) temporary directories: tempfile builds their names and paths.
#[inline(never)]
fn make_temp_dirs() {
    for _ in 0..8 {
        let dir = tempfile::Builder::new()
            .prefix("mapprof-app-")
            .tempdir()
            .unwrap();
        std::hint::black_box(dir.path());
    }
}

#[test]
fn registry_frames_are_charged_to_the_workspace_caller() {
    let _profiler = mapprof::Profiler::builder().heap_rate(1).start().unwrap();
    mapprof::labels(&[("case", "registry")], make_temp_dirs);
    let profile = common::decoded(mapprof::ProfileKind::Allocs);
    let view = ProfileView::new(&profile).unwrap();
    let filter = AppFilter::default();
    let mut through_tempfile = 0;
    let mut charged_by_name_to_tempfile = 0;
    for sample in view.samples() {
        let frames: Vec<_> = sample.frames().collect();
        let Some(tempfile) = frames.iter().find(|f| f.function.starts_with("tempfile::")) else {
            continue;
        };
        if !frames.iter().any(|f| f.function.contains("make_temp_dirs")) {
            continue;
        }
        through_tempfile += 1;
        assert!(
            tempfile.file.contains("/registry/src/"),
            "tempfile's source is in cargo's registry: {}",
            tempfile.file
        );
        let charged = first_application_frame(&sample, &filter).expect("an application frame");
        assert!(
            charged.function.contains("make_temp_dirs"),
            "charged to {} at {}, not to the caller",
            charged.function,
            charged.file
        );
        // The workspace frame is application code though its crate is on no list.
        assert!(charged.file.ends_with(file!()), "{}", charged.file);
        // Positive control: by names alone, tempfile would be charged.
        let by_name = frames.iter().find(|f| filter.is_application(&f.function));
        if by_name.is_some_and(|f| f.function.starts_with("tempfile::")) {
            charged_by_name_to_tempfile += 1;
        }
    }
    assert!(through_tempfile > 0, "no sample through tempfile");
    assert!(
        charged_by_name_to_tempfile > 0,
        "the names alone never charged tempfile: the check cannot fail ({through_tempfile} \
         samples)"
    );
    eprintln!(
        "{through_tempfile} samples through tempfile, {charged_by_name_to_tempfile} of them \
         charged to tempfile by names alone, all to make_temp_dirs by files"
    );
}
