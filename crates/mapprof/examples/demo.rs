//! A small program with the incident's allocation pattern, profiled by mapprof: a cache whose
//! update rebuilds its whole map (no capacity hint, every entry cloned) next to a request path
//! that allocates modestly. `make flame` runs it and renders what it writes.
//!
//! Usage: `demo OUT_DIR` writes `OUT_DIR/demo-heap.pb.gz` and `OUT_DIR/demo-allocs.pb.gz`.

use std::collections::HashMap;
use std::path::PathBuf;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

mod cache {
    use std::collections::HashMap;

    /// The regressed cache: every update rebuilds the map from scratch.
    #[derive(Default)]
    pub(crate) struct Cache {
        pub(crate) entries: HashMap<u64, String>,
    }

    impl Cache {
        #[inline(never)]
        pub(crate) fn update(&mut self, key: u64, value: String) {
            let mut rebuilt = HashMap::new(); // no capacity hint: grows and rehashes again and again
            for (k, v) in &self.entries {
                rebuilt.insert(*k, v.clone());
            }
            rebuilt.insert(key, value);
            self.entries = rebuilt;
        }

        #[inline(never)]
        pub(crate) fn get(&self, key: u64) -> Option<&String> {
            self.entries.get(&key)
        }
    }
}

#[inline(never)]
fn handle_request(cache: &cache::Cache, id: u64) -> String {
    match cache.get(id % 2_000) {
        Some(v) => format!("{{\"id\":{id},\"value\":\"{v}\"}}"),
        None => format!("{{\"id\":{id},\"value\":null}}"),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "flamegraphs".into()),
    );
    std::fs::create_dir_all(&out)?;
    let _profiler = mapprof::Profiler::builder()
        .heap_rate(64 * 1024)
        .env()?
        .start()?;

    let worker = std::thread::spawn(|| {
        let mut cache = cache::Cache::default();
        let mut responses = 0usize;
        for i in 0..3_000u64 {
            cache.update(i % 2_000, format!("value-{i}"));
            for r in 0..20 {
                responses += handle_request(&cache, i * 20 + r).len();
            }
        }
        (cache, responses)
    });
    let (cache, responses) = worker.join().map_err(|_| "worker panicked")?;
    let sizes: HashMap<&str, usize> =
        [("entries", cache.entries.len()), ("bytes", responses)].into();
    println!(
        "demo: cache of {} entries, {} response bytes",
        sizes["entries"], sizes["bytes"]
    );

    for kind in [mapprof::ProfileKind::Heap, mapprof::ProfileKind::Allocs] {
        let path = out.join(format!("demo-{}.pb.gz", kind.name()));
        mapprof::write_profile_to_path(kind, &path)?;
        println!("demo: wrote {}", path.display());
    }
    Ok(())
}
