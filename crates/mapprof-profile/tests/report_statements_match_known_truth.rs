//! The report's statements on synthetic profiles of programs whose truth is known (issue 17,
//! point 4): a whole-file reader over files of different lengths, a CSV-style field splitter,
//! a presized map and a map grown per request, Go's block profile with `select` waits and Go's
//! heap and mutex profiles of a function with a deferred `Unlock`. Each profile is what
//! mapprof (or Go) writes for that program: at `heap_rate=1` one sample per stack and size
//! class with exact counts; at a larger rate the expected sampled counts, unbiased.

use mapprof_profile::app::AppFilter;
use mapprof_profile::proto::Profile;
use mapprof_profile::report::{report, Finding, Language, Report, ReportOptions};
use mapprof_profile::testing::{at, num_label, Loc, ProfileBuilder};

/// Every finding, whatever its share.
fn report_of(profiles: &[(&str, &Profile)]) -> Report {
    report_with(profiles, AppFilter::default())
}

fn report_with(profiles: &[(&str, &Profile)], filter: AppFilter) -> Report {
    let mut opts = ReportOptions::default();
    opts.filter = filter;
    opts.max_findings = 50;
    opts.min_share = 0.0;
    report(profiles, &opts).unwrap()
}

fn finding<'r>(report: &'r Report, function: &str) -> &'r Finding {
    find(report, function)
        .unwrap_or_else(|| panic!("no finding for {function}:\n{}", report.to_text()))
}

fn find<'r>(report: &'r Report, function: &str) -> Option<&'r Finding> {
    report.findings.iter().find(|f| f.function == function)
}

/// Digits grouped by thousands, as the report writes counts.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The probability that an allocation of `size` bytes is sampled at `rate`.
fn probability(size: f64, rate: f64) -> f64 {
    if rate <= 1.0 {
        1.0
    } else {
        -(-size / rate).exp_m1()
    }
}

/// A mapprof heap (allocs) profile at `rate`: per (stack, allocation size, count) one sample,
/// of the expected sampled count unbiased (none when it rounds to 0), labelled `bytes`.
fn heap_profile(rate: i64, allocations: &[(&[Loc], u64, u64)]) -> Profile {
    let mut b = ProfileBuilder::new(&[
        ("alloc_objects", "count"),
        ("alloc_space", "bytes"),
        ("inuse_objects", "count"),
        ("inuse_space", "bytes"),
    ])
    .period("space", "bytes", rate)
    .comment("mapprof heap profile");
    for &(stack, size, count) in allocations {
        let p = probability(size as f64, rate as f64);
        let sampled = (count as f64 * p).round();
        if sampled == 0.0 {
            continue;
        }
        let objects = sampled / p;
        let values = [
            objects.round() as i64,
            (objects * size as f64).round() as i64,
            0,
            0,
        ];
        let labels = [num_label("bytes", size as i64, Some("bytes"))];
        b = b.labelled_sample(stack, &values, &labels);
    }
    b.build()
}

/// `read_to_end` into an empty `Vec<u8>` from `wc::count_file`: std's stack as rustc 1.95
/// writes it (v0 names for std's own code, so the element type is named).
fn read_to_end_stack() -> Vec<Loc> {
    vec![
        Loc::from("<alloc::raw_vec::RawVecInner>::finish_grow"),
        "<alloc::raw_vec::RawVecInner>::grow_amortized".into(),
        "<alloc::vec::Vec<u8>>::try_reserve".into(),
        "std::io::default_read_to_end::<std::fs::File>".into(),
        "<std::fs::File as std::io::Read>::read_to_end".into(),
        at("wc::count_file", "/home/u/src/wc/src/main.rs", 14),
        at("wc::main", "/home/u/src/wc/src/main.rs", 30),
    ]
}

/// The final capacities of 64 buffers that read files of 4 kB to 256 kB whole: each grows
/// from 32 bytes by doubling to the first capacity that holds its file.
fn file_buffers() -> Vec<u64> {
    (0..64u64)
        .map(|i| (4_000 + i * 4_000).next_power_of_two())
        .collect()
}

/// The growth of [`file_buffers`]: (capacity, buffers that reached it).
fn files_read() -> Vec<(u64, u64)> {
    let finals = file_buffers();
    (5..=20)
        .map(|k| 1u64 << k)
        .map(|cap| (cap, finals.iter().filter(|&&f| f >= cap).count() as u64))
        .filter(|&(_, n)| n > 0)
        .collect()
}

/// The allocations of `classes` (capacity, count) at `stack`.
fn reads<'s>(stack: &'s [Loc], classes: &[(u64, u64)]) -> Vec<(&'s [Loc], u64, u64)> {
    classes.iter().map(|&(cap, n)| (stack, cap, n)).collect()
}

#[test]
fn a_whole_file_reader_grows_each_buffer_about_as_often_as_its_file_needs() {
    let stack = read_to_end_stack();
    let classes = files_read();
    let allocations = reads(&stack, &classes);
    let heap = heap_profile(1, &allocations);
    let r = report_of(&[("heap.pb.gz", &heap)]);
    let text = r.to_text();
    let f = finding(&r, "wc::count_file");
    assert_eq!(f.growth.len(), 1, "{text}");
    let g = &f.growth[0];
    // The truth: 64 buffers, each through 32 B .. its final capacity.
    let resizes: u64 = classes.iter().map(|&(_, n)| n).sum();
    let bytes: u64 = classes.iter().map(|&(cap, n)| cap * n).sum();
    let average_final = file_buffers().iter().sum::<u64>() / 64;
    assert_eq!(g.container, "Vec");
    assert_eq!(g.calls, Some(64.0), "{g:?}");
    assert_eq!(g.resizes, resizes as f64);
    assert_eq!(g.bytes, bytes as i64);
    let per_call = resizes as f64 / 64.0;
    assert!((g.per_call.unwrap() - per_call).abs() < 1e-9, "{g:?}");
    assert_eq!(g.final_bytes, Some(average_final as i64), "{g:?}");
    assert_eq!(g.largest_bytes, 262_144);
    // What makes this a test: the largest class (the old estimate of the calls) holds the 32
    // buffers that reached 256 kB, which would have said 26 growths per call.
    assert_eq!(classes.last().unwrap(), &(262_144, 32));
    assert!(
        (13.0..14.0).contains(&per_call),
        "{per_call}: about 13 per file"
    );
    let said = &f.statements[0];
    assert!(
        said.starts_with(&format!(
            "grows a Vec about {per_call:.0} times per call ({} resizes in 64 calls, counted at \
             its first growth step, 32B",
            grouped(resizes)
        )),
        "{text}"
    );
    // Bytes, and elements only of the named element type: a byte each.
    assert!(said.contains("262,144 elements of 1 B"), "{text}");
    assert!(!said.contains("entries"), "{text}");
}

#[test]
fn a_whole_file_reader_sampled_at_512_kib_has_no_per_call_figure() {
    // The 32-byte first step is sampled once in 16,000: nothing counts the calls.
    let stack = read_to_end_stack();
    let classes = files_read();
    let allocations = reads(&stack, &classes);
    let heap = heap_profile(524_288, &allocations);
    let r = report_of(&[("heap.pb.gz", &heap)]);
    let text = r.to_text();
    let g = &finding(&r, "wc::count_file").growth[0];
    assert_eq!(g.calls, None, "{g:?}");
    assert_eq!(g.per_call, None, "{g:?}");
    assert!(
        text.contains(
            "how many times per call cannot be told: its smallest size class seen, 7.94kB, may \
             not be its first growth step"
        ),
        "{text}"
    );
    assert!(!text.contains("times per call ("), "{text}");
}

/// `csvsplit::split_fields`: one `String` per field, 2,370,000 of 11 bytes; `read_input` one
/// 40 MB buffer.
fn csv_profile(rate: i64) -> Profile {
    let to_string = [
        Loc::from("alloc::alloc::alloc"),
        "<alloc::raw_vec::RawVecInner>::try_allocate_in".into(),
        "<str as alloc::string::ToString>::to_string".into(),
        at(
            "csvsplit::split_fields",
            "/home/u/src/csvsplit/src/main.rs",
            21,
        ),
        at("csvsplit::main", "/home/u/src/csvsplit/src/main.rs", 40),
    ];
    let read = [
        Loc::from("alloc::alloc::alloc"),
        "std::fs::read::inner".into(),
        at(
            "csvsplit::read_input",
            "/home/u/src/csvsplit/src/main.rs",
            9,
        ),
        at("csvsplit::main", "/home/u/src/csvsplit/src/main.rs", 38),
    ];
    heap_profile(rate, &[(&to_string, 11, 2_370_000), (&read, 40_000_000, 1)])
}

#[test]
fn a_field_splitter_is_ranked_and_explained_by_its_objects() {
    let heap = csv_profile(524_288);
    let r = report(&[("heap.pb.gz", &heap)], &ReportOptions::default()).unwrap();
    let text = r.to_text();
    // Under 40% of the bytes, nearly all of the objects: it leads.
    assert_eq!(r.findings[0].function, "csvsplit::split_fields", "{text}");
    let f = &r.findings[0];
    let a = f.allocation.as_ref().unwrap();
    let objects = a.events;
    assert!(
        (objects - 2_370_000.0).abs() < 2_370_000.0 * 0.01,
        "{objects}"
    );
    assert!(a.share < 0.5 && a.events_share > 0.99, "{a:?}");
    assert!(
        f.statements[0].starts_with(&format!(
            "allocates {} objects of ~11B each (100.0% of all allocated objects",
            grouped(objects.round() as u64)
        )),
        "{text}"
    );
    assert!(
        f.advice.iter().any(|a| a.contains("reuse a buffer")),
        "{text}"
    );
    // Positive control: the 40 MB buffer is stated by its bytes, with no churn advice.
    let read = finding(&r, "csvsplit::read_input");
    assert!(
        read.statements[0].starts_with("allocates 38.15MB (60.4% of all allocated bytes)"),
        "{text}"
    );
    assert!(read.advice.is_empty(), "{text}");
}

/// hashbrown's table of `buckets` buckets of 16-byte entries (`HashMap<u64, u64>`, SSE2).
fn table_bytes(buckets: u64) -> u64 {
    (buckets * 16).next_multiple_of(16) + buckets + 16
}

fn insert_stack(function: &str, line: i64) -> Vec<Loc> {
    vec![
        Loc::from("hashbrown::raw::RawTableInner::resize_inner"),
        "hashbrown::raw::RawTable<T,A>::reserve_rehash".into(),
        "hashbrown::map::HashMap<K,V,S,A>::insert".into(),
        "std::collections::hash::map::HashMap<K,V,S>::insert".into(),
        at(function, "/home/u/src/svc/src/lib.rs", line),
        at("svc::main", "/home/u/src/svc/src/main.rs", 5),
    ]
}

/// 40 requests each filling a new `HashMap<u64, u64>` with 2,000 entries (4 to 4,096 buckets:
/// 11 tables), and a map presized for 2,000 filled 40 times.
fn maps_profile(rate: i64) -> Profile {
    let grown = insert_stack("svc::handle_request", 12);
    let presized = [
        Loc::from("hashbrown::raw::RawTableInner::fallible_with_capacity"),
        "hashbrown::raw::RawTableInner::with_capacity".into(),
        "std::collections::hash::map::HashMap<K,V,S>::with_capacity".into(),
        at("svc::fill_presized", "/home/u/src/svc/src/lib.rs", 30),
        at("svc::main", "/home/u/src/svc/src/main.rs", 6),
    ];
    let mut allocations: Vec<(&[Loc], u64, u64)> = (0..11)
        .map(|k| (&grown[..], table_bytes(4 << k), 40))
        .collect();
    allocations.push((&presized, table_bytes(4096), 40));
    heap_profile(rate, &allocations)
}

#[test]
fn a_map_grown_per_request_is_counted_per_request_and_a_presized_one_not_at_all() {
    let heap = maps_profile(1);
    let r = report_of(&[("heap.pb.gz", &heap)]);
    let text = r.to_text();
    let f = finding(&r, "svc::handle_request");
    let g = &f.growth[0];
    assert_eq!(g.container, "HashMap");
    assert_eq!(g.calls, Some(40.0), "{g:?}");
    assert_eq!(g.per_call, Some(11.0), "{g:?}");
    assert_eq!(g.first_bytes, 84);
    assert_eq!(g.final_bytes, Some(table_bytes(4096) as i64));
    let bytes: u64 = (0..11).map(|k| table_bytes(4 << k) * 40).sum();
    assert_eq!(g.bytes, bytes as i64);
    // 4,096 buckets hold 7/8 of themselves.
    assert_eq!(g.capacity, Some(3584), "{g:?}");
    assert!(
        f.statements[0]
            .starts_with("grows a HashMap about 11 times per call (440 resizes in 40 calls"),
        "{text}"
    );
    assert!(
        f.statements[0].contains("a table for up to 3,584 entries"),
        "{text}"
    );
    // The presized map allocates, and grows nothing.
    let presized = finding(&r, "svc::fill_presized");
    assert!(presized.growth.is_empty(), "{presized:?}");
    assert!(
        !presized.statements.iter().any(|s| s.contains("grows")),
        "{text}"
    );
    assert!(presized.allocation.is_some(), "{text}");
}

#[test]
fn entries_are_not_told_when_the_first_table_was_never_sampled() {
    // At 64 KiB the 84-byte first table of 40 maps is sampled 0.05 times: the smallest class
    // seen is a later table, and counting doublings from it would halve the capacity or worse.
    let heap = maps_profile(65_536);
    let r = report_of(&[("heap.pb.gz", &heap)]);
    let text = r.to_text();
    let f = finding(&r, "svc::handle_request");
    let g = &f.growth[0];
    assert!(g.first_bytes > 84, "{g:?}");
    assert_eq!(g.capacity, None, "{g:?}");
    assert!(!f.statements[0].contains("entries"), "{text}");
    // Nor the calls: the 7 classes seen would say 7 growths per call, not 11.
    assert_eq!(g.per_call, None, "{g:?}");
    assert!(text.contains("may not be its first growth step"), "{text}");
}

#[test]
fn a_container_grown_once_is_under_the_noise_floor() {
    // At 512 KiB one sampled resize of a 64-byte VecDeque is unbiased to 8,192 resizes and
    // 512 kB: a large share of this run's growth, resting on one sample.
    let queue = |function: &str| {
        vec![
            Loc::from("<alloc::raw_vec::RawVecInner>::finish_grow"),
            "<alloc::raw_vec::RawVecInner>::grow_amortized".into(),
            "<alloc::raw_vec::RawVec<app::Job>>::grow_one".into(),
            "<alloc::collections::vec_deque::VecDeque<app::Job>>::grow".into(),
            "<alloc::collections::vec_deque::VecDeque<app::Job>>::push_back".into(),
            at(function, "/home/u/src/app/src/jobs.rs", 8),
        ]
    };
    let once = queue("app::queue_once");
    let often = queue("app::queue_often");
    let stack = read_to_end_stack();
    let classes = files_read();
    let p = probability(64.0, 524_288.0);
    let mut allocations = reads(&stack, &classes);
    allocations.push((&once, 64, (1.0 / p).round() as u64));
    // Positive control: 8 sampled resizes of the same queue elsewhere are stated.
    allocations.push((&often, 64, (8.0 / p).round() as u64));
    let heap = heap_profile(524_288, &allocations);
    let r = report_of(&[("heap.pb.gz", &heap)]);
    let text = r.to_text();
    assert!(find(&r, "app::queue_once").is_none(), "{text}");
    let often = finding(&r, "app::queue_often");
    assert_eq!(often.growth[0].container, "VecDeque", "{text}");
    // 8 sampled resizes: a relative standard error of 1/√8.
    let error = often.growth[0].error;
    assert!((error - 8f64.sqrt().recip()).abs() < 0.01, "{error}");
    assert!(often.growth[0].share > 0.01, "{text}");
}

/// A Go contention profile (block or mutex: the same sample types).
fn go_contention(samples: &[(&[Loc], i64, i64)]) -> Profile {
    let mut b = ProfileBuilder::new(&[("contentions", "count"), ("delay", "nanoseconds")]).period(
        "contentions",
        "count",
        1,
    );
    for &(stack, contentions, delay) in samples {
        b = b.sample(stack, &[contentions, delay]);
    }
    b.build()
}

const GOROOT: &str = "/usr/local/go/src";

fn go_at(function: &str, file: &str, line: i64) -> Loc {
    at(function, &format!("{GOROOT}/{file}"), line)
}

fn main_go(function: &str, line: i64) -> Loc {
    at(function, "/home/u/svc/main.go", line)
}

#[test]
fn go_select_and_channel_waits_are_not_lock_waits() {
    let runtime_main = go_at("runtime.main", "runtime/proc.go", 250);
    let client = [
        go_at("runtime.selectgo", "runtime/select.go", 328),
        go_at(
            "net/http.(*persistConn).roundTrip",
            "net/http/transport.go",
            2638,
        ),
        go_at(
            "net/http.(*Transport).roundTrip",
            "net/http/transport.go",
            603,
        ),
        go_at("net/http.(*Client).do", "net/http/client.go", 725),
        main_go("main.fetch", 30),
        main_go("main.main", 60),
        runtime_main.clone(),
    ];
    let receive = [
        go_at("runtime.chanrecv1", "runtime/chan.go", 442),
        main_go("main.collect", 44),
        runtime_main.clone(),
    ];
    let lock = [
        go_at("sync.(*Mutex).Lock", "sync/mutex.go", 90),
        main_go("main.(*Cache).Get", 20),
        runtime_main,
    ];
    let block = go_contention(&[
        (&client, 400, 6_000_000_000),
        (&receive, 200, 2_000_000_000),
        (&lock, 300, 1_500_000_000),
    ]);
    let r = report_of(&[("block.pb.gz", &block)]);
    let text = r.to_text();
    assert_eq!(r.language, Language::Go);
    for function in ["main.fetch", "main.collect"] {
        let f = finding(&r, function);
        assert!(f.lock_waiting.is_none(), "{text}");
        assert!(
            f.statements[0].starts_with("waits on channels or in `select`, not for a lock"),
            "{text}"
        );
    }
    let fetch = finding(&r, "main.fetch");
    assert_eq!(fetch.channel_waiting.as_ref().unwrap().value, 6_000_000_000);
    // Positive control: a wait in sync.(*Mutex).Lock is a lock wait.
    let get = finding(&r, "main.(*Cache).Get");
    assert_eq!(get.lock_waiting.as_ref().unwrap().value, 1_500_000_000);
    assert!(get.channel_waiting.is_none(), "{text}");
    assert!(
        get.statements[0].starts_with("waits for locks: 1.50s"),
        "{text}"
    );
}

/// `main.(*Cache).Update`: `defer c.mu.Unlock()` (line 25), `make(map...)` (26), a `make` per
/// entry (28), `defer log.Printf(...)` run at the closing brace (31), as Go 1.19 writes them.
fn go_update_profiles() -> (Profile, Profile, Profile) {
    let update = |line| main_go("main.(*Cache).Update", line);
    let malloc = go_at("runtime.mallocgc", "runtime/malloc.go", 1171);
    let makemap = [
        malloc.clone(),
        go_at("runtime.makemap", "runtime/map.go", 349),
        update(26),
    ];
    let makeslice = [
        malloc.clone(),
        go_at("runtime.makeslice", "runtime/slice.go", 103),
        update(28),
    ];
    let deferred_printf = [
        malloc,
        go_at("fmt.Sprintf", "fmt/print.go", 219),
        go_at("log.Printf", "log/log.go", 354),
        update(31),
    ];
    let mut b = ProfileBuilder::new(&[
        ("alloc_objects", "count"),
        ("alloc_space", "bytes"),
        ("inuse_objects", "count"),
        ("inuse_space", "bytes"),
    ])
    .period("space", "bytes", 512 * 1024);
    for (stack, objects, size) in [
        (&makemap[..], 2_000, 30_000),
        (&makeslice[..], 5_000_000, 48),
        (&deferred_printf[..], 100_000, 64),
    ] {
        let labels = [num_label("bytes", size, Some("bytes"))];
        b = b.labelled_sample(stack, &[objects, objects * size, 0, 0], &labels);
    }
    let heap = b.build();
    let unlock = [
        go_at("sync.(*Mutex).Unlock", "sync/mutex.go", 223),
        update(31),
    ];
    let hold = [
        go_at("sync.(*Mutex).Unlock", "sync/mutex.go", 223),
        main_go("main.holdLock", 45),
    ];
    let mutex = go_contention(&[(&unlock, 900, 9_000_000_000), (&hold, 100, 1_000_000_000)]);
    let cpu_sample = |stack: &[Loc], samples: i64| (stack.to_vec(), samples);
    let cpu_stacks = [
        cpu_sample(
            &[
                go_at("runtime.hashGrow", "runtime/map.go", 1045),
                go_at("runtime.mapassign_faststr", "runtime/map_faststr.go", 255),
                update(28),
            ],
            40,
        ),
        cpu_sample(&[update(28)], 60),
        cpu_sample(&[main_go("main.holdLock", 43)], 30),
        cpu_sample(
            &[
                at(
                    "internal/runtime/maps.(*table).rehash",
                    "/usr/local/go/src/internal/runtime/maps/table.go",
                    1040,
                ),
                at(
                    "internal/runtime/maps.(*Map).putSlotSmall",
                    "/usr/local/go/src/internal/runtime/maps/map.go",
                    500,
                ),
                main_go("main.fillSwiss", 70),
            ],
            20,
        ),
        cpu_sample(&[main_go("main.fillSwiss", 71)], 30),
    ];
    let mut b = ProfileBuilder::new(&[("samples", "count"), ("cpu", "nanoseconds")]).period(
        "cpu",
        "nanoseconds",
        10_000_000,
    );
    for (stack, samples) in &cpu_stacks {
        b = b.sample(stack, &[*samples, samples * 10_000_000]);
    }
    (heap, mutex, b.build())
}

/// The report of [`go_update_profiles`].
fn go_update_report() -> Report {
    let (heap, mutex, cpu) = go_update_profiles();
    report_of(&[
        ("allocs.pb.gz", &heap),
        ("mutex.pb.gz", &mutex),
        ("cpu.pb.gz", &cpu),
    ])
}

#[test]
fn the_line_cited_for_a_go_function_is_where_it_allocates_not_its_closing_brace() {
    let r = go_update_report();
    let text = r.to_text();
    let update = finding(&r, "main.(*Cache).Update");
    assert_eq!(
        (update.file.as_str(), update.line),
        ("/home/u/svc/main.go", 28),
        "{text}"
    );
    // holdLock's mutex samples are all at its closing brace (line 45), where the deferred
    // Unlock runs; its CPU samples are at line 43.
    let hold = finding(&r, "main.holdLock");
    assert_eq!(hold.line, 43, "{text}");
    // Positive control: with only the mutex profile, the closing brace is all there is.
    let mutex = go_update_profiles().1;
    let r = report_of(&[("mutex.pb.gz", &mutex)]);
    assert_eq!(finding(&r, "main.holdLock").line, 45);
}

#[test]
fn go_map_growth_in_the_cpu_profile_is_growth_and_the_advice_speaks_go() {
    let r = go_update_report();
    let text = r.to_text();
    assert_eq!(r.language, Language::Go);
    for (function, growth) in [("main.(*Cache).Update", 40), ("main.fillSwiss", 20)] {
        let f = finding(&r, function);
        let m = f.map_growth_cpu.as_ref().expect(&text);
        assert_eq!(m.events, growth as f64, "{function}: {text}");
        assert!(
            f.statements
                .iter()
                .any(|s| s.starts_with("grows maps as it inserts")),
            "{text}"
        );
        assert!(
            f.advice.iter().any(|a| a.contains("make(map[K]V, n)")),
            "{text}"
        );
    }
    let advice: Vec<&String> = r.findings.iter().flat_map(|f| &f.advice).collect();
    assert!(advice.iter().any(|a| a.contains("sync.RWMutex")), "{text}");
    for rust in ["with_capacity", "`RwLock`", "&str", "clear()"] {
        assert!(!advice.iter().any(|a| a.contains(rust)), "{rust}: {text}");
    }
    // Positive control: the same Update in a Rust program's report speaks Rust.
    let rust = report_of(&[("heap.pb.gz", &maps_profile(1))]);
    assert_eq!(rust.language, Language::Rust);
    assert!(rust.to_text().contains("HashMap::with_capacity(n)"));
}

#[test]
fn dependencies_are_told_by_where_their_source_lives() {
    // csv (registry) and a git dependency grow a Vec for the application's split_fields;
    // mylib, a crate of the workspace nobody listed, is application code.
    let registry =
        "/home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/csv-1.3.1/src/reader.rs";
    let git = "/home/u/.cargo/git/checkouts/fastsplit-3f2a/1a2b3c4/src/lib.rs";
    let growth = |lib: Loc, app: Loc| {
        vec![
            Loc::from("<alloc::raw_vec::RawVecInner>::finish_grow"),
            "<alloc::raw_vec::RawVecInner>::grow_amortized".into(),
            at(
                "<alloc::raw_vec::RawVec<u64>>::grow_one",
                "/rustc/17067e9ac6d7e98f18d4b4b8ee8fd8ba8b6e3f4a/library/alloc/src/raw_vec/mod.rs",
                340,
            ),
            at(
                "<alloc::vec::Vec<u64>>::push",
                "/rustc/17067e9ac6d7e98f18d4b4b8ee8fd8ba8b6e3f4a/library/alloc/src/vec/mod.rs",
                2400,
            ),
            lib,
            app,
        ]
    };
    let csv = growth(
        at("csv::reader::Reader<R>::read_byte_record", registry, 1500),
        at(
            "csvsplit::split_fields",
            "/home/u/src/csvsplit/src/main.rs",
            21,
        ),
    );
    let fast = growth(
        at("fastsplit::split", git, 12),
        at(
            "csvsplit::split_fields",
            "/home/u/src/csvsplit/src/main.rs",
            22,
        ),
    );
    let mylib = growth(
        at(
            "mylib::parse::tokens",
            "/home/u/src/csvsplit/mylib/src/parse.rs",
            7,
        ),
        at("csvsplit::main", "/home/u/src/csvsplit/src/main.rs", 40),
    );
    let allocations: Vec<(&[Loc], u64, u64)> = [&csv, &fast, &mylib]
        .into_iter()
        .flat_map(|s| (5..10).map(move |k| (&s[..], 1u64 << k, 100)))
        .collect();
    let heap = heap_profile(1, &allocations);
    let r = report_of(&[("heap.pb.gz", &heap)]);
    let text = r.to_text();
    let split = finding(&r, "csvsplit::split_fields");
    assert_eq!(split.growth[0].calls, Some(200.0), "{text}");
    assert_eq!(split.growth[0].element_bytes, Some(8), "{text}");
    for library in [
        "csv::reader::Reader<R>::read_byte_record",
        "fastsplit::split",
    ] {
        assert!(find(&r, library).is_none(), "{library}: {text}");
    }
    let mylib = finding(&r, "mylib::parse::tokens");
    assert_eq!(mylib.growth[0].calls, Some(100.0), "{text}");
    // `--library` still adds names: mylib's cost moves to its caller.
    let r = report_with(
        &[("heap.pb.gz", &heap)],
        AppFilter::default().with_library("mylib"),
    );
    assert!(
        find(&r, "mylib::parse::tokens").is_none(),
        "{}",
        r.to_text()
    );
    assert_eq!(finding(&r, "csvsplit::main").growth[0].calls, Some(100.0));
}
