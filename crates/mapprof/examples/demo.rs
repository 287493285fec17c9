//! A small program with the incident's pattern, profiled by mapprof: a cache whose `update`
//! rebuilds its whole map (no capacity hint, every entry cloned) while holding the mutex that
//! every reader also takes. `make flame` runs it and renders what it writes.
//!
//! Usage: `demo OUT_DIR` writes `OUT_DIR/demo-{heap,allocs,mutex,block}.pb.gz`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

#[global_allocator]
static ALLOC: mapprof::Alloc = mapprof::Alloc::jemalloc();

mod cache {
    use mapprof::sync::Mutex; // std::sync::Mutex in a build without profiling
    use std::collections::HashMap;

    /// The regressed cache: every update rebuilds the map under the lock readers need.
    #[derive(Default)]
    pub(crate) struct Cache {
        entries: Mutex<HashMap<u64, String>>,
    }

    impl Cache {
        #[inline(never)]
        pub(crate) fn update(&self, key: u64, value: String) {
            let mut entries = self.entries.lock().unwrap();
            let mut rebuilt = HashMap::new(); // no capacity hint: grows and rehashes again and again
            for (k, v) in entries.iter() {
                rebuilt.insert(*k, v.clone());
            }
            rebuilt.insert(key, value);
            *entries = rebuilt;
        }

        #[inline(never)]
        pub(crate) fn get(&self, key: u64) -> Option<String> {
            self.entries.lock().unwrap().get(&key).cloned()
        }

        pub(crate) fn len(&self) -> usize {
            self.entries.lock().unwrap().len()
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
        .mutex_fraction(1)
        .block_rate(1)
        .env()?
        .start()?;

    // One writer updates the cache while two readers serve requests for as long as it
    // writes, so that every rebuild happens while readers want the lock.
    let cache = Arc::new(cache::Cache::default());
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (cache, writing) = (cache.clone(), writing.clone());
        std::thread::spawn(move || {
            for i in 0..3_000u64 {
                cache.update(i % 2_000, format!("value-{i}"));
            }
            writing.store(false, Relaxed);
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (cache, writing) = (cache.clone(), writing.clone());
            std::thread::spawn(move || {
                let mut bytes = 0;
                let mut id = r;
                while writing.load(Relaxed) {
                    bytes += handle_request(&cache, id).len();
                    id += 2;
                }
                bytes
            })
        })
        .collect();
    writer.join().map_err(|_| "writer panicked")?;
    let mut responses = 0;
    for r in readers {
        responses += r.join().map_err(|_| "reader panicked")?;
    }
    println!(
        "demo: cache of {} entries, {responses} response bytes",
        cache.len()
    );

    for kind in mapprof::ProfileKind::ALL {
        let path = out.join(format!("demo-{}.pb.gz", kind.name()));
        mapprof::write_profile_to_path(kind, &path)?;
        println!("demo: wrote {}", path.display());
    }
    Ok(())
}
