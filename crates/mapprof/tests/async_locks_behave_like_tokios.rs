//! `mapprof::tokio`'s API does what `tokio::sync`'s does: try-locks fail while held, `Debug`
//! shows the data or `<locked>`, mapped and downgraded guards hold the lock, owned guards keep
//! it alive and release it, `blocking_*` work outside a runtime, `const_new` makes statics.

mod common;
use common::block_on;
use mapprof::tokio::{Mutex, MutexGuard, OwnedMutexGuard, RwLock, RwLockWriteGuard};
use std::sync::Arc;

static COUNTER: Mutex<u64> = Mutex::const_new(0);
static TABLE: RwLock<[u8; 2]> = RwLock::const_new([1, 2]);

#[test]
fn a_mutex_behaves_like_tokios() {
    block_on(async {
        *COUNTER.lock().await += 1;
        let m = Mutex::new(vec![1, 2]);
        let held = m.lock().await;
        assert!(m.try_lock().is_err(), "held");
        assert_eq!(format!("{m:?}"), "Mutex { data: <locked> }");
        assert_eq!(format!("{held:?}"), "[1, 2]");
        drop(held);
        let mut second = MutexGuard::map(m.lock().await, |v| &mut v[1]);
        *second += 10;
        assert!(m.try_lock().is_err(), "a mapped guard holds the lock");
        drop(second);
        assert_eq!(*m.try_lock().unwrap(), [1, 12]);
        assert_eq!(format!("{:?}", Mutex::from(3)), "Mutex { data: 3 }");

        let shared = Arc::new(Mutex::new(String::from("a")));
        let mut owned: OwnedMutexGuard<String> = shared.clone().lock_owned().await;
        owned.push('b');
        assert!(Arc::ptr_eq(OwnedMutexGuard::mutex(&owned), &shared));
        assert!(shared.clone().try_lock_owned().is_err());
        let moved = tokio::task::spawn_blocking(move || drop(owned));
        moved.await.unwrap();
        assert_eq!(*shared.try_lock().unwrap(), "ab");
    });
    assert_eq!(*COUNTER.blocking_lock(), 1);
    let mut m = Mutex::<u8>::default();
    *m.get_mut() = 7;
    *m.blocking_lock() += 1;
    assert_eq!(m.into_inner(), 8);
}

#[test]
fn an_rwlock_behaves_like_tokios() {
    block_on(async {
        let first = TABLE.read().await;
        let second = TABLE.read().await;
        assert!(TABLE.try_write().is_err(), "readers hold it");
        assert_eq!(first[0] + second[1], 3);
        drop((first, second));

        let l = RwLock::new(vec![1, 2]);
        let mut writing = l.write().await;
        writing.push(3);
        assert!(l.try_read().is_err(), "a writer holds it");
        let reading = RwLockWriteGuard::downgrade(writing);
        assert!(l.try_read().is_ok(), "downgraded: readers get in");
        assert!(l.try_write().is_err(), "and writers still wait");
        drop(reading);
        let mut last = RwLockWriteGuard::map(l.write().await, |v| v.last_mut().unwrap());
        *last = 30;
        drop(last);
        let third = mapprof::tokio::RwLockReadGuard::map(l.read().await, |v| &v[2]);
        assert_eq!(*third, 30);
        drop(third);

        let shared = Arc::new(RwLock::with_max_readers(0u32, 1));
        let read = shared.clone().read_owned().await;
        assert!(
            shared.clone().try_read_owned().is_err(),
            "one reader at most"
        );
        drop(read);
        *shared.clone().write_owned().await += 1;
        assert_eq!(*shared.clone().try_write_owned().unwrap(), 1);
    });
    let l = RwLock::new(5);
    *l.blocking_write() += 1;
    assert_eq!(*l.blocking_read(), 6);
    assert_eq!(format!("{l:?}"), "RwLock { data: 6 }");
    assert_eq!(l.into_inner(), 6);
}
