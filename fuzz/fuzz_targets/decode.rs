//! Any bytes through what `mapprof top|flame|report` do with a file: decode (gzip or raw), the
//! view (pruned and not), `top`, the flame graph's SVG and the report, for every sample type.
//! Must never panic, abort or exceed libFuzzer's memory and time limits (-rss_limit_mb,
//! -timeout): the readers' limits (`mapprof_profile::limits`) keep every input bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mapprof_profile::codec::decode;
use mapprof_profile::flame::{render_svg, FlameOptions};
use mapprof_profile::report::{report, ReportOptions};
use mapprof_profile::top::{top, TopOptions};
use mapprof_profile::view::ProfileView;

fuzz_target!(|data: &[u8]| {
    let Ok(profile) = decode(data) else { return };
    let (Ok(view), Ok(unpruned)) = (ProfileView::new(&profile), ProfileView::unpruned(&profile))
    else {
        return;
    };
    for index in 0..view.sample_types().len() {
        let mut sink = Vec::new();
        let _ = top(&view, index, &TopOptions::default()).render(&mut sink);
        let _ = render_svg(&unpruned, index, &FlameOptions::default(), std::io::sink());
    }
    let _ = report(&[("input", &profile)], &ReportOptions::default()).map(|r| r.to_text());
});
