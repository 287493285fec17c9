#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

#[inline(never)]
fn grow_map() -> std::collections::HashMap<u64, u64> {
    let mut m = std::collections::HashMap::new();
    for i in 0..1000 { m.insert(i, i); }
    m
}

fn main() {
    mapprof::mapprof_rt::sampler::set_heap_rate(1);
    let m = std::thread::spawn(grow_map).join().unwrap();
    let v: Vec<u8> = Vec::with_capacity(1 << 20);
    let recs = mapprof::mapprof_rt::thread::ignore(|| mapprof::mapprof_rt::table::snapshot(mapprof::mapprof_rt::Kind::Heap));
    mapprof::mapprof_rt::thread::ignore(|| {
    for r in recs.iter().filter(|r| r.size >= 1000).take(4) {
        println!("--- size {} counters {:?} depth {}", r.size, r.counters, r.stack.len());
        for &a in &r.stack {
            let mut first = true;
            backtrace::resolve((a - 1) as *mut std::ffi::c_void, |s| {
                println!("  {} {:#x} {} | {:?} {}:{}", if first {"*"} else {" "}, a, s.name().map(|n| format!("{:#}", n)).unwrap_or_default(), s.name().and_then(|n| n.as_str()).unwrap_or(""), s.filename().map(|f| f.display().to_string()).unwrap_or_default(), s.lineno().unwrap_or(0));
                first = false;
            });
        }
    }});
    drop((m, v));
}
