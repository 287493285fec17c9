//! Application frames: which function of *the program being profiled* a cost belongs to.
//!
//! A heap sample's leaf is `alloc::raw_vec::finish_grow` or `runtime.mallocgc`, a lock sample's
//! is a futex wait: true, and of no use to whoever must change the code. What they need is the
//! first frame, from the leaf, that is their own code: the *application frame*. [`AppFilter`]
//! decides which frames are application frames; [`app_top`] charges each sample to its first
//! one and ranks the functions.
//!
//! # The rules
//!
//! A frame's source file is asked before its name where the name cannot tell: a crate or Go
//! module nobody listed is a dependency if its source came from a registry. In order:
//!
//! 1. **Glue** ([`GLUE`], pseudo frames, addresses) is never application code.
//! 2. **Listed names** are libraries whatever their file: a crate or Go package on the library
//!    list ([`BUILTIN_LIBRARIES`] and [`AppFilter::with_library`], so `--library` always wins),
//!    derivable trait impls, drop glue and built-in types' methods (see the owning crate,
//!    below). mapprof's own crates stay libraries in mapprof's workspace this way. A Go name
//!    shaped like a standard package is not listed: its file decides (rules 3 and 4).
//! 3. **Dependency and toolchain sources** are libraries ([`LIBRARY_PATHS`], the roots from
//!    `CARGO_HOME`, `RUSTUP_HOME`, `GOROOT`, `GOPATH`, `GOMODCACHE`, and
//!    [`AppFilter::with_library_root`]): cargo's registry and git checkouts, a `vendor/`
//!    directory, the Rust toolchain (`/rustc/<hash>/library/`, `~/.rustup/toolchains/`), the Go
//!    module cache (`/go/pkg/mod/`) and Go's standard library (`$GOROOT/src/`; a Go name shaped
//!    like a standard package is taken as one when its file is under `…/src/<package>/` or
//!    `…/src/runtime/`).
//! 4. **Any other source file** is the workspace's: a frame with a Rust path or Go name there is
//!    application code, whether or not its crate is known (a Go package without a dot in its
//!    path too). A bare C or mangled name is not, wherever it was compiled.
//! 5. **Without a file**, the name alone decides, as follows.
//!
//! A frame is **not** an application frame when its function name is:
//!
//! 1. runtime glue or not a function at all ([`GLUE`]): `__rust*` and the allocator shims,
//!    `__libc_start*`, `_start`, `start_thread`, `clone`, `clone3`, C's `main`, a
//!    `[bracketed]` pseudo frame such as `[no stack]`, a raw address such as `0x55d3c0a1b2c3`,
//!    mapprof's [`LOST_FRAME`], and the wrapper Go compiles for a `defer` statement
//!    (`main.(*Cache).Update.deferwrap1`: charged to the function that deferred);
//! 2. a Rust path (it contains `::`) whose *owning crate* is a library ([`BUILTIN_LIBRARIES`]
//!    plus whatever [`AppFilter::with_library`] adds);
//! 3. a Go name (no `::`, a `.`) of a standard-library package: the package path's first
//!    element has no `.` and the package is not `main` (`runtime.mallocgc`,
//!    `sync.(*Mutex).Lock`, `net/http.(*conn).serve`, `internal/poll.(*FD).Read`), or of a
//!    package matched by the library list (`with_library("github.com/gorilla/*")`);
//! 4. anything else that is not a Rust path: a bare C name (`memcpy`, `pthread_mutex_lock`), a
//!    bare inlined name without its path (`insert<u64>`), a still-mangled symbol (`_ZN...`).
//!
//! Everything else is application code: `cache_service::Cache::update`,
//! `cache_service::server::handle::{{closure}}`, `main.(*Cache).Update`, `main.main`.
//!
//! The owning crate of a Rust path is its first segment (`hashbrown` in
//! `hashbrown::map::HashMap<K,V,S>::insert`; generic arguments and `::h0123abcd` hash suffixes
//! do not matter). For a trait method, `<Self as Trait>::method`, it is the crate of the `Self`
//! type, whose impl it is: `<hashbrown::map::HashMap<K,V,S> as core::clone::Clone>::clone` is
//! hashbrown's, `<cache_service::cache::Item as core::ops::drop::Drop>::drop` is the
//! application's. References are looked through (`<&cache_service::Item as ...>` is the
//! application's; for a blanket impl like core's `impl Debug for &T` this names the forwarding
//! glue rather than the real impl one frame up, a small price for a simple rule). When `Self` is
//! not a path (a slice, array, tuple, primitive or type parameter: `<[T]>::sort_by`,
//! `<str as core::fmt::Display>::fmt`, `<T as core::convert::Into<U>>::into`), the impl belongs
//! to the trait's crate, or to core/alloc when there is no trait.
//!
//! One exception: an impl of a trait that `#[derive]` writes ([`DERIVABLE`]: `Clone`,
//! `Default`, `PartialEq`, `Hash`, ...) belongs to the trait's crate, core, whatever `Self` is.
//! `<cache_service::cache::Item as core::clone::Clone>::clone` is almost always derived, and
//! its cost belongs to the code that asked for the clone (a map rebuilt by cloning every entry
//! should show as one function, not two). `Debug` is left out: it is as often written by hand.
//!
//! Drop glue, `core::ptr::drop_in_place<cache_service::cache::Item>`, is **library** code by
//! rule 2: the glue itself is std's, so the cost of dropping falls to the application function
//! that dropped the value, which is where a change would be made. (The `Drop::drop` impl of an
//! application type, `<cache_service::Item as core::ops::drop::Drop>::drop`, is application code
//! and keeps its cost.)

mod ranking;

pub use ranking::{app_top, AppRow, AppTop};

use crate::builder::LOST_FRAME;
use crate::names::{self, STD_CRATES};
use crate::view::{Frame, SampleRef};

/// The crates whose code is never the application's: the standard library, the allocator's
/// and runtime's support crates, the async runtime and HTTP stack, tracing, and mapprof itself
/// (with its unwinder and renderer). A trailing `*` matches every crate name with that prefix
/// (`futures*` is `futures`, `futures_util`, `futures_core`, ...). Extend it here or, per use,
/// with [`AppFilter::with_library`].
pub const BUILTIN_LIBRARIES: &[&str] =
    &concat::<{ STD_CRATES.len() + OTHER_LIBRARIES.len() }>(&STD_CRATES, OTHER_LIBRARIES);

/// [`BUILTIN_LIBRARIES`] after the standard library's crates.
const OTHER_LIBRARIES: &[&str] = &[
    // What the standard library is built from.
    "compiler_builtins",
    "std_detect",
    "panic_unwind",
    // The async runtime and HTTP stack.
    "tokio",
    "hyper",
    "hyper_util",
    "http",
    "http_body",
    "http_body_util",
    "h2",
    "bytes",
    "futures*",
    "mio",
    "tower*",
    // Instrumentation and locking.
    "tracing*",
    "parking_lot*",
    // The profiler: mapprof's crates, its unwinder, its renderer, its encoder.
    "mapprof*",
    "backtrace",
    "inferno",
    "prost",
    // The allocator under mapprof's wrapper.
    "tikv_jemalloc*",
];

/// `a` then `b`, in a constant.
const fn concat<const N: usize>(a: &[&'static str], b: &[&'static str]) -> [&'static str; N] {
    assert!(a.len() + b.len() == N);
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = if i < a.len() { a[i] } else { b[i - a.len()] };
        i += 1;
    }
    out
}

/// Path fragments of source files that are not the application's: dependencies (cargo's
/// registry and git checkouts, `vendor/` directories, Go's module cache) and toolchains (Rust's
/// standard library as rustc remaps it, and a local rustup or rust-src copy). Matched anywhere in
/// the path, backslashes read as `/`; `cargo/registry/src/` covers `~/.cargo/` and rustc's own
/// `/cargo/` remapping.
pub const LIBRARY_PATHS: &[&str] = &[
    "cargo/registry/src/",
    "cargo/git/checkouts/",
    "/rustc/",
    "/rust/deps/",
    "/.rustup/toolchains/",
    "/lib/rustlib/src/rust/",
    "/vendor/",
    "/go/pkg/mod/",
];

/// The traits `#[derive]` implements (other than `Debug`): an impl of one of them is charged to
/// its caller (see the module documentation). Paths without generic arguments.
pub const DERIVABLE: &[&str] = &[
    "core::clone::Clone",
    "core::marker::Copy",
    "core::default::Default",
    "core::cmp::PartialEq",
    "core::cmp::Eq",
    "core::cmp::PartialOrd",
    "core::cmp::Ord",
    "core::hash::Hash",
];

/// Function names that are runtime glue or no function at all, whatever the crate list says.
/// A trailing `*` matches every name with that prefix. `[bracketed]` names and raw addresses
/// are recognised by shape, not listed.
pub const GLUE: &[&str] = &[
    "__rust*",
    "__rg_*",
    "__rdl_*",
    "__libc_start*",
    "_start",
    "start_thread",
    "clone",
    "clone3",
    "main",
    LOST_FRAME,
];

/// Decides which frames are the application's (see the module documentation for the rules).
///
/// `AppFilter::default()` treats the crates of [`BUILTIN_LIBRARIES`] as libraries;
/// [`AppFilter::with_library`] adds more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppFilter {
    /// Crate names (or Go package paths), `*` at the end for a prefix.
    libraries: Vec<String>,
    /// Directories whose files are library sources (rule 3), each ending in `/`.
    roots: Vec<String>,
}

impl Default for AppFilter {
    fn default() -> Self {
        let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        let mut filter = Self {
            libraries: BUILTIN_LIBRARIES.iter().map(|&s| s.to_owned()).collect(),
            roots: Vec::new(),
        };
        // Where this machine keeps what it did not write; profiles made elsewhere rely on
        // LIBRARY_PATHS.
        for (key, under) in [
            ("CARGO_HOME", "registry/src"),
            ("CARGO_HOME", "git/checkouts"),
            ("RUSTUP_HOME", "toolchains"),
            ("GOROOT", "src"),
            ("GOMODCACHE", ""),
            ("GOPATH", "pkg/mod"),
        ] {
            if let Some(home) = env(key) {
                filter = filter.with_library_root(&format!("{home}/{under}"));
            }
        }
        filter
    }
}

impl AppFilter {
    /// The built-in library list; the same as `AppFilter::default()`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also treats `krate` as a library: a Rust crate name as it appears in paths (a `-` is
    /// read as `_`, so `serde-json` and `serde_json` both work), or a Go package path. A
    /// trailing `*` matches every name with that prefix (`serde*`, `github.com/gorilla/*`).
    pub fn with_library(mut self, krate: &str) -> Self {
        let krate = if krate.contains('/') || krate.contains('.') {
            krate.to_owned() // A Go package path: keep it as written.
        } else {
            krate.replace('-', "_")
        };
        if !self.libraries.contains(&krate) {
            self.libraries.push(krate);
        }
        self
    }

    /// Also treats every source file under the directory `root` as a library's (rule 3 of the
    /// module documentation), e.g. a cargo home or a Go root in an unusual place.
    pub fn with_library_root(mut self, root: &str) -> Self {
        let mut root = root.replace('\\', "/");
        while root.ends_with('/') {
            root.pop();
        }
        root.push('/');
        if root != "/" && !self.roots.contains(&root) {
            self.roots.push(root);
        }
        self
    }

    /// The library patterns in use: the built-in ones, then those added.
    pub fn libraries(&self) -> &[String] {
        &self.libraries
    }

    /// Whether `file`, a frame's source file, is a dependency's or a toolchain's (rule 3).
    /// With `go_std_package`, the frame's Go package when its name is stdlib-shaped,
    /// `…/src/<package>/` counts too (a Go root anywhere).
    fn is_library_file(&self, file: &str, go_std_package: Option<&str>) -> bool {
        let file = file.replace('\\', "/");
        let under_vendor = file.starts_with("vendor/");
        if under_vendor
            || LIBRARY_PATHS.iter().any(|p| file.contains(p))
            || self.roots.iter().any(|r| file.starts_with(r.as_str()))
        {
            return true;
        }
        go_std_package.is_some_and(|package| {
            let first = names::go_root_element(package);
            file.contains(&format!("/src/{first}/")) || file.contains("/src/runtime/")
        })
    }

    /// Whether `frame` is application code: its source file first, then its name (see the
    /// module documentation for the order).
    pub fn is_application_frame(&self, frame: &Frame<'_>) -> bool {
        self.is_application_at(&frame.function, frame.file)
    }

    /// Whether `function`, compiled from `file` (empty when unknown), is application code.
    pub fn is_application_at(&self, function: &str, file: &str) -> bool {
        let file = file.trim();
        if file.is_empty() {
            return self.is_application(function);
        }
        let name = function.trim();
        match self.by_name(name) {
            ByName::Glue | ByName::Listed | ByName::Other => false,
            ByName::Unlisted => !self.is_library_file(file, None),
            ByName::GoStd(package) => !self.is_library_file(file, Some(package)),
        }
    }

    /// Whether `krate` (a Rust crate name or a Go package path) is on the library list.
    pub fn is_library(&self, krate: &str) -> bool {
        self.libraries.iter().any(|p| matches_pattern(p, krate))
    }

    /// Whether `function`, a frame's function name, is application code by its name alone
    /// (rule 5: for a frame without a source file).
    pub fn is_application(&self, function: &str) -> bool {
        matches!(self.by_name(function.trim()), ByName::Unlisted)
    }

    fn by_name<'n>(&self, name: &'n str) -> ByName<'n> {
        if name.is_empty()
            || name.starts_with('[')
            || names::is_address(name)
            || GLUE.iter().any(|p| matches_pattern(p, name))
            || names::is_go_defer_wrapper(name)
        {
            return ByName::Glue;
        }
        if names::is_rust_path(name) {
            return match rust_owner(name) {
                Owner::Crate(krate) if !self.is_library(krate) => ByName::Unlisted,
                _ => ByName::Listed,
            };
        }
        match names::go_package(name) {
            Some(package) if self.is_library(package) => ByName::Listed,
            Some(package) if names::is_go_std_shaped(package) => ByName::GoStd(package),
            Some(_) => ByName::Unlisted,
            None => ByName::Other, // Not a Rust path, not a Go name: C, or a bare or mangled name.
        }
    }
}

/// What a function's name alone says of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByName<'a> {
    /// Glue, a pseudo frame or an address: never application code.
    Glue,
    /// A library by the list, or a derivable impl or built-in type's method.
    Listed,
    /// A Go package shaped like the standard library's (no `.` in its first element): a
    /// library unless its file says it is the workspace's.
    GoStd(&'a str),
    /// A Rust path or Go name nobody listed: application code unless its file says otherwise.
    Unlisted,
    /// Not a Rust path or Go name: C, a bare inlined name, a mangled symbol.
    Other,
}

/// `pattern` is a name, or a prefix followed by `*`.
fn matches_pattern(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    }
}

/// Whose code a Rust function is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner<'a> {
    /// A crate, by name.
    Crate(&'a str),
    /// A built-in type's inherent method (`<[T]>::sort_by`, `<str>::len`): core's or alloc's.
    Builtin,
}

/// The owning crate of a demangled Rust path (see the module documentation).
fn rust_owner(name: &str) -> Owner<'_> {
    let name = name.trim();
    let Some(q) = names::qualified(name) else {
        return Owner::Crate(names::first_segment(name.trim_start_matches('<')));
    };
    if let Some(path) = q.trait_path {
        let bare = path.split('<').next().unwrap_or(path);
        if DERIVABLE.contains(&bare) {
            return Owner::Builtin;
        }
    }
    match type_owner(q.self_type) {
        Some(owner) => owner,
        None => match q.trait_path {
            Some(path) => rust_owner(path),
            None => Owner::Builtin,
        },
    }
}

/// The owner of a type (indirection stripped), `None` for a type that is not a path.
fn type_owner(ty: &str) -> Option<Owner<'_>> {
    if ty.starts_with('<') {
        return Some(rust_owner(ty));
    }
    names::is_type_path(ty).then(|| Owner::Crate(names::first_segment(ty)))
}

/// The first application frame of `sample`, from the leaf: the function it is charged to.
pub fn first_application_frame<'v, 'a>(
    sample: &SampleRef<'v, 'a>,
    filter: &AppFilter,
) -> Option<&'v Frame<'a>> {
    split_at_application(sample, filter).map(|(frame, _)| frame)
}

/// The first application frame of `sample` and the library frames below it, leaf first.
pub fn split_at_application<'v, 'a>(
    sample: &SampleRef<'v, 'a>,
    filter: &AppFilter,
) -> Option<(&'v Frame<'a>, Vec<&'v Frame<'a>>)> {
    let mut below = Vec::new();
    for frame in sample.frames() {
        if filter.is_application_frame(frame) {
            return Some((frame, below));
        }
        below.push(frame);
    }
    None
}

/// How many of `frames` (one sample's, leaf first) to keep so that the stack starts `keep`
/// frames below (rootward of) its outermost application frame: the runtime's root frames
/// further out (thread start, executor, HTTP stack) are what [`crate::flame::FromApp`] hides.
/// All of them when no frame is the application's.
pub fn frames_from_application(frames: &[&Frame<'_>], filter: &AppFilter, keep: usize) -> usize {
    match frames.iter().rposition(|f| filter.is_application_frame(f)) {
        Some(outermost) => frames.len().min(outermost + 1 + keep),
        None => frames.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str) -> bool {
        AppFilter::default().is_application(name)
    }

    #[test]
    fn std_and_runtime_crates_are_libraries() {
        for name in [
            "std::sys::pal::unix::thread::Thread::new::thread_start",
            "core::ops::function::FnOnce::call_once",
            "alloc::raw_vec::finish_grow",
            "alloc::raw_vec::RawVec<T,A>::grow_one",
            "hashbrown::raw::RawTable<T,A>::reserve_rehash",
            "tokio::runtime::task::harness::Harness<T,S>::poll",
            "hyper::proto::h1::dispatch::Dispatcher<D,Bs,I,T>::poll_catch",
            "hyper_util::server::conn::auto::Builder<E>::serve_connection",
            "http::header::map::HeaderMap<T>::insert",
            "http_body_util::combinators::box_body::BoxBody<D,E>::new",
            "h2::proto::connection::Connection<T,P,B>::poll",
            "bytes::bytes_mut::BytesMut::reserve_inner",
            "futures_util::future::future::FutureExt::poll_unpin",
            "futures::executor::block_on",
            "mio::poll::Poll::poll",
            "tower::util::service_fn::ServiceFn<T>::call",
            "tower_http::trace::service::Trace<S,M>::call",
            "tracing_core::dispatcher::get_default",
            "parking_lot::raw_mutex::RawMutex::lock_slow",
            "parking_lot_core::parking_lot::park",
            "backtrace::backtrace::trace_unsynchronized",
            "inferno::flamegraph::from_lines",
            "prost::encoding::encode_varint",
            "mapprof::profiler::Profiler::dump",
            "mapprof_rt::heap::sample",
            "mapprof_profile::builder::build",
        ] {
            assert!(!app(name), "{name} should be a library frame");
        }
    }

    #[test]
    fn application_paths_closures_generics_and_hashes_are_application() {
        for name in [
            "cache_service::cache::Cache::update",
            "cache_service::server::handle::{{closure}}",
            "cache_service::server::handle::{{closure}}::{{closure}}",
            "cache_service::cache::bump<alloc::string::String>",
            "cache_service::cache::Cache::get::h0123456789abcdef",
            "cache_service::main",
            // Prefixes of library names are not library names.
            "stdlib_shim::f",
            "httparse_app::f",
            "mapping::f",
        ] {
            assert!(app(name), "{name} should be an application frame");
        }
    }

    #[test]
    fn trait_impls_belong_to_the_self_type() {
        assert!(!app(
            "<hashbrown::map::HashMap<K,V,S> as core::clone::Clone>::clone"
        ));
        // Derivable traits are charged to the caller, whoever's type it is.
        assert!(!app(
            "<cache_service::cache::Item as core::clone::Clone>::clone"
        ));
        assert!(!app("<cache_service::Key as core::hash::Hash>::hash<H>"));
        assert!(!app(
            "<cache_service::Key as core::cmp::PartialEq<cache_service::Key>>::eq"
        ));
        assert!(!app(
            "<alloc::string::String as core::fmt::Write>::write_str"
        ));
        assert!(app(
            "<cache_service::Wrapper<alloc::string::String> as core::fmt::Debug>::fmt"
        ));
        assert!(app(
            "<&cache_service::cache::Item as core::fmt::Debug>::fmt"
        ));
        assert!(app(
            "<cache_service::cache::Item as core::ops::drop::Drop>::drop"
        ));
        // Self is no path: the trait's crate decides, or core/alloc without a trait.
        assert!(!app("<[T]>::sort_by"));
        assert!(!app("<str as core::fmt::Display>::fmt"));
        assert!(!app("<T as core::convert::Into<U>>::into"));
        assert!(app("<u64 as cache_service::hash::Mix>::mix"));
        assert!(!app("<(A, B) as core::hash::Hash>::hash"));
        assert!(!app(
            "<dyn core::any::Any + core::marker::Send>::downcast_ref"
        ));
        assert!(!app(
            "<fn() -> cache_service::Item as core::ops::function::FnOnce<()>>::call_once"
        ));
        assert!(!app(
            "<<alloc::vec::Vec<T> as core::iter::IntoIterator>::IntoIter as core::iter::Iterator>::next"
        ));
    }

    #[test]
    fn drop_glue_is_library_code() {
        // The glue is std's; the caller that dropped the value gets the cost.
        assert!(!app("core::ptr::drop_in_place<cache_service::cache::Item>"));
    }

    #[test]
    fn glue_pseudo_frames_and_addresses_are_not_application() {
        for name in [
            "__rust_alloc",
            "__rust_begin_short_backtrace",
            "__rdl_alloc",
            "__rg_alloc",
            "__libc_start_main",
            "__libc_start_call_main",
            "_start",
            "start_thread",
            "clone",
            "clone3",
            "main",
            "[no stack]",
            "[unknown]",
            "0x55d3c0a1b2c3",
            "mapprof::lost_samples",
            "",
            // Not Rust paths: C, bare inlined names, mangled symbols.
            "memcpy",
            "__memmove_avx_unaligned_erms",
            "pthread_mutex_lock",
            "insert<u64>",
            "_ZN13cache_service5cache5Cache6update17h0123456789abcdefE",
            "_ZN13cache_service4mainE.llvm.123",
        ] {
            assert!(!app(name), "{name:?} should not be an application frame");
        }
        // An address-like application name is still a name.
        assert!(app("cache_service::x0"));
    }

    #[test]
    fn go_names_split_stdlib_from_main_and_modules() {
        for name in [
            "main.(*Cache).Update",
            "main.main",
            "main.contend.func1",
            "main.F[...]",
            "github.com/acme/cache.(*Store).Put",
        ] {
            assert!(app(name), "{name} should be an application frame");
        }
        for name in [
            "runtime.mallocgc",
            "runtime.main",
            "sync.(*Mutex).Lock",
            "sync.runtime_SemacquireMutex",
            "net/http.(*conn).serve",
            "internal/poll.(*FD).Read",
            "encoding/json.Marshal",
            "time.Sleep",
        ] {
            assert!(!app(name), "{name} should be a library frame");
        }
    }

    #[test]
    fn added_libraries_are_libraries() {
        let filter = AppFilter::default()
            .with_library("serde-json")
            .with_library("rayon*")
            .with_library("github.com/gorilla/*");
        assert!(!filter.is_application("serde_json::ser::to_string"));
        assert!(!filter.is_application("rayon_core::registry::in_worker"));
        assert!(!filter.is_application("<serde_json::Value as core::clone::Clone>::clone"));
        assert!(!filter.is_application("github.com/gorilla/mux.(*Router).ServeHTTP"));
        assert!(filter.is_application("github.com/acme/cache.Put"));
        assert!(filter.is_application("cache_service::cache::Cache::update"));
        assert!(AppFilter::default().is_application("serde_json::ser::to_string"));
        assert!(filter.is_library("serde_json") && filter.is_library("std"));
        assert_eq!(
            filter.libraries().len(),
            BUILTIN_LIBRARIES.len() + 3,
            "{:?}",
            filter.libraries()
        );
    }

    #[test]
    fn registry_toolchain_and_vendored_sources_are_libraries() {
        let filter = AppFilter::default();
        for (name, file) in [
            (
                "regex_automata::meta::regex::Regex::search",
                "/home/u/.cargo/registry/src/index.crates.io-6f17d22bba15001f/regex-automata-0.4.9/src/meta/regex.rs",
            ),
            (
                "csv::reader::Reader<R>::read_record",
                "/home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/csv-1.3.1/src/reader.rs",
            ),
            (
                "walkdir::IntoIter::next",
                "/home/u/.cargo/git/checkouts/walkdir-0123456789abcdef/1a2b3c4/src/lib.rs",
            ),
            (
                "fancy_parser::parse",
                "C:\\Users\\u\\.cargo\\registry\\src\\index.crates.io-6f17d22bba15001f\\fancy_parser-0.1.0\\src\\lib.rs",
            ),
            ("ignore::walk::WalkParallel::run", "/work/tool/vendor/ignore/src/walk.rs"),
            ("ignore::walk::WalkParallel::run", "vendor/ignore/src/walk.rs"),
            (
                "hashbrown_fork::raw::reserve",
                "/rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/std/src/lib.rs",
            ),
            ("foldhash::fast::hash", "/rust/deps/foldhash-0.1.5/src/fast.rs"),
            (
                "some_core_part::f",
                "/home/u/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/lib/rustlib/src/rust/library/core/src/lib.rs",
            ),
            (
                "github.com/gorilla/mux.(*Router).ServeHTTP",
                "/home/u/go/pkg/mod/github.com/gorilla/mux@v1.8.1/mux.go",
            ),
            ("runtime.mallocgc", "/usr/local/go/src/runtime/malloc.go"),
            // A linknamed function: package time, file in the runtime's directory.
            ("time.Sleep", "/usr/lib/go-1.19/src/runtime/time.go"),
            ("net/http.(*conn).serve", "/opt/sdk/go1.22.1/src/net/http/server.go"),
        ] {
            assert!(
                !filter.is_application_at(name, file),
                "{name} at {file} should be a library frame"
            );
            // Positive control: the name alone charges all but Go's standard library.
            let by_name = name.contains("::") || name.starts_with("github.com/");
            assert_eq!(filter.is_application(name), by_name, "{name}");
        }
        let rooted = AppFilter::default().with_library_root("/opt/cargo-home/registry/src/");
        let file = "/opt/cargo-home/registry/src/mirror/regex-1.11.1/src/regex/string.rs";
        assert!(!rooted.is_application_at("regex::regex::string::Regex::new", file));
        assert!(filter.is_application_at("regex::regex::string::Regex::new", file));
    }

    #[test]
    fn workspace_sources_are_application_code_whatever_the_name() {
        let filter = AppFilter::default();
        for (name, file) in [
            // A crate no list names, relative and absolute.
            ("line_counter::count::count_lines", "src/count.rs"),
            (
                "line_counter::count::count_lines",
                "/home/u/line-counter/src/count.rs",
            ),
            (
                "<line_counter::Stats as core::fmt::Display>::fmt",
                "src/stats.rs",
            ),
            (
                "main.(*Cache).Update",
                "/work/main/fixtures/go-heap/main.go",
            ),
            // A Go module without a dot in its path, outside any Go root.
            ("cache.(*Store).Put", "/home/u/svc/cache/store.go"),
        ] {
            assert!(
                filter.is_application_at(name, file),
                "{name} at {file} should be an application frame"
            );
        }
        // Names say library whatever the file: the lists, --library, derives, glue, C.
        for (filter, name) in [
            (&filter, "mapprof_rt::heap::sample"),
            (
                &filter,
                "<line_counter::Stats as core::clone::Clone>::clone",
            ),
            (&filter, "__rust_alloc"),
            (&filter, "memcpy"),
            (
                &AppFilter::default().with_library("line-counter"),
                "line_counter::count::count_lines",
            ),
        ] {
            assert!(!filter.is_application_at(name, "src/count.rs"), "{name}");
        }
        // Without a file the name decides.
        assert!(!filter.is_application_at("cache.(*Store).Put", ""));
        assert!(filter.is_application_at("regex::Regex::new", ""));
    }
}
