//! Reading frame names, Rust's and Go's: the crate a Rust path starts with, the parts of a
//! `<Type as Trait>::f` impl, a name reduced to a plain path, a Go name's package. Only reading:
//! what a name *means* for a cost (application or library, container growth or not) is decided
//! by the rule tables of [`crate::app`] and [`crate::growth`], from what these functions read.
//!
//! Names come as the symbolizer demangles them, in both of rustc's styles: legacy
//! (`alloc::raw_vec::RawVecInner<A>::finish_grow`, `hashbrown::map::HashMap<K,V,S>::insert`,
//! `::h0123abcd` hash suffixes already removed) and v0 (`<alloc::raw_vec::RawVecInner>::grow`,
//! `<alloc::vec::Vec<u8>>::reserve::do_reserve_and_handle::<alloc::alloc::Global>`), closures as
//! `{{closure}}` or `{closure#0}`. Go names are `package.Function`, `package.(*Type).Method`,
//! `package.F[...]`, `package.f.func1`, the package a path (`net/http`, `github.com/a/b`).

/// The standard library's crates that containers are built in, and hashbrown, on which std's
/// `HashMap` is built.
pub const STD_CRATES: [&str; 4] = ["std", "core", "alloc", "hashbrown"];

/// Rust's primitive types, whose inherent methods (`<str>::repeat`, `<u8>::is_ascii`) are core's
/// or alloc's.
pub const PRIMITIVES: [&str; 17] = [
    "str", "bool", "char", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64",
    "i128", "isize", "f32", "f64",
];

/// `0x` followed by hex digits only: what [`crate::view::ProfileView`] shows for an
/// unsymbolized location.
pub fn is_address(name: &str) -> bool {
    name.strip_prefix("0x")
        .is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether `name` is a Rust path (it contains `::`), not a C, Go or bare name.
pub fn is_rust_path(name: &str) -> bool {
    name.contains("::")
}

/// The first segment of a path: `hashbrown` in `hashbrown::map::HashMap<K,V,S>::insert`, the
/// crate of an unqualified Rust path.
pub fn first_segment(path: &str) -> &str {
    let end = path
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(path.len());
    &path[..end]
}

/// The parts of a qualified Rust name, `<Self as Trait>rest` or `<Self>rest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Qualified<'a> {
    /// The type whose impl it is, references, pointers, `dyn` and `impl` looked through:
    /// `alloc::string::String` in `<&mut alloc::string::String as core::fmt::Write>::write_str`.
    pub self_type: &'a str,
    /// The trait, when the impl is of one: `core::fmt::Write`.
    pub trait_path: Option<&'a str>,
    /// What follows the closing `>`: `::write_str`.
    pub rest: &'a str,
}

/// `name` split as `<Self as Trait>rest` or `<Self>rest`; `None` when it does not start with
/// `<` or the `<` is never closed. Generic arguments nest; the `>` of `fn() -> T` does not
/// close anything.
pub fn qualified(name: &str) -> Option<Qualified<'_>> {
    let inner = name.strip_prefix('<')?;
    let bytes = inner.as_bytes();
    let (mut depth, mut as_at) = (0usize, None);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'<' => depth += 1,
            b'>' if i > 0 && bytes[i - 1] == b'-' => {}
            b'>' if depth == 0 => {
                return Some(Qualified {
                    self_type: strip_indirection(&inner[..as_at.unwrap_or(i)]),
                    trait_path: as_at.map(|at| inner[at + 4..i].trim()),
                    rest: &inner[i + 1..],
                });
            }
            b'>' => depth -= 1,
            b' ' if depth == 0 && as_at.is_none() && inner[i..].starts_with(" as ") => {
                as_at = Some(i);
            }
            _ => {}
        }
    }
    None
}

/// A type with references, pointers, `dyn` and `impl` looked through: `Vec<T>` in `&mut Vec<T>`.
pub fn strip_indirection(mut ty: &str) -> &str {
    loop {
        ty = ty.trim_start();
        match ["&mut ", "&", "*const ", "*mut ", "mut ", "dyn ", "impl "]
            .iter()
            .find_map(|p| ty.strip_prefix(p))
        {
            Some(rest) => ty = rest,
            None => return ty.trim_end(),
        }
    }
}

/// Whether a type (indirection stripped) is written as a path, `alloc::vec::Vec<T>`, so that it
/// has a crate: not a slice, array, tuple, function pointer, primitive or type parameter. A
/// qualified type (`<T as Trait>::Output`) is not a path; read it with [`qualified`].
pub fn is_type_path(ty: &str) -> bool {
    !ty.starts_with(['[', '(', '<'])
        && ty
            .split(['<', '(', ' '])
            .next()
            .is_some_and(|head| head.contains("::"))
}

/// A function name as a plain path: generic arguments removed (`::<..>` included), `<Type>::f`
/// and `<Type as Trait>::f` written `Type::f` (`Trait::f` when `Type` is not a path, e.g. `T` or
/// `[u8]`), references looked through, closure segments (`{{closure}}`, `{closure#0}`) dropped.
///
/// `<alloc::raw_vec::RawVecInner<_>>::reserve::do_reserve_and_handle::<alloc::alloc::Global>`
/// becomes `alloc::raw_vec::RawVecInner::reserve::do_reserve_and_handle`, and
/// `<alloc::string::String as core::fmt::Write>::write_str` becomes
/// `alloc::string::String::write_str`. A Go name stays as it is.
pub fn frame_path(name: &str) -> String {
    let name = name.trim();
    let joined = match qualified(name) {
        Some(q) => {
            let head = if q.self_type.starts_with('<') {
                frame_path(q.self_type)
            } else if is_type_path(q.self_type) {
                q.self_type.to_owned()
            } else {
                q.trait_path.unwrap_or(q.self_type).to_owned()
            };
            head + q.rest
        }
        None => name.to_owned(),
    };
    strip_generics(&joined)
        .split("::")
        .filter(|segment| !segment.starts_with('{'))
        .collect::<Vec<_>>()
        .join("::")
}

/// Removes every `<...>` group, with the `::` before a turbofish.
fn strip_generics(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    let mut prev = '\0';
    for c in s.chars() {
        match c {
            '<' => {
                if depth == 0 && out.ends_with("::") {
                    out.truncate(out.len() - 2);
                }
                depth += 1;
            }
            '>' if depth > 0 && prev != '-' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
        prev = c;
    }
    out
}

/// The package path of a Go function name, `None` when `name` does not look like one:
/// `net/http` in `net/http.(*conn).serve`, `main` in `main.(*Cache).Update`.
pub fn go_package(name: &str) -> Option<&str> {
    // Receivers and type arguments come after the package: `pkg.(*T).m`, `pkg.F[...]`.
    let head = &name[..name.find(['(', '[']).unwrap_or(name.len())];
    let last_slash = head.rfind('/').map_or(0, |i| i + 1);
    let dot = head[last_slash..].find('.')? + last_slash;
    let package = &name[..dot];
    (!package.is_empty() && !package.contains(char::is_whitespace)).then_some(package)
}

/// Whether `name` is a Go function name (`main.(*Cache).Update`), not a Rust path.
pub fn is_go(name: &str) -> bool {
    !is_rust_path(name) && go_package(name.trim()).is_some()
}

/// Whether `name` is the wrapper Go (1.21 on) compiles for a `defer` statement:
/// `main.(*Cache).Update.deferwrap1`.
pub fn is_go_defer_wrapper(name: &str) -> bool {
    is_go(name)
        && name
            .rsplit('.')
            .next()
            .is_some_and(|last| last.starts_with("deferwrap"))
}

/// Whether a Go package path is shaped like the standard library's: its first element has no
/// `.` (`runtime`, `net/http`, not `github.com/a/b`) and it is not `main`. Only the shape: a
/// module without a dot in its path looks the same, and only a source file can tell them apart.
pub fn is_go_std_shaped(package: &str) -> bool {
    !go_root_element(package).contains('.') && package != "main"
}

/// The first element of a Go package path: `net` in `net/http`.
pub fn go_root_element(package: &str) -> &str {
    package.split('/').next().unwrap_or(package)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names_split_into_self_trait_and_rest() {
        let q = qualified("<&mut alloc::string::String as core::fmt::Write>::write_str").unwrap();
        assert_eq!(
            (q.self_type, q.trait_path, q.rest),
            (
                "alloc::string::String",
                Some("core::fmt::Write"),
                "::write_str"
            )
        );
        let q = qualified("<fn() -> u8 as core::ops::Fn<()>>::call").unwrap();
        assert_eq!(q.self_type, "fn() -> u8");
        assert_eq!(q.trait_path, Some("core::ops::Fn<()>"));
        assert_eq!(qualified("<[T]>::sort_by").unwrap().self_type, "[T]");
        assert_eq!(qualified("alloc::vec::Vec<T>::push"), None);
        assert_eq!(qualified("<a as b"), None);
    }

    #[test]
    fn type_paths_have_a_crate_and_the_rest_do_not() {
        for ty in ["alloc::vec::Vec<T>", "hashbrown::map::HashMap<K,V,S>"] {
            assert!(is_type_path(ty), "{ty}");
        }
        for ty in [
            "[u8]",
            "(a::B, c::D)",
            "T",
            "str",
            "fn(a::B) -> c::D",
            "<T as a::B>::C",
        ] {
            assert!(!is_type_path(ty), "{ty}");
        }
        assert_eq!(
            first_segment("hashbrown::map::HashMap<K,V,S>::insert"),
            "hashbrown"
        );
    }

    #[test]
    fn go_names_give_their_package() {
        assert_eq!(go_package("net/http.(*conn).serve"), Some("net/http"));
        assert_eq!(go_package("main.(*Cache).Update"), Some("main"));
        assert_eq!(
            go_package("github.com/acme/cache.(*Store).Put"),
            Some("github.com/acme/cache")
        );
        assert_eq!(go_package("memcpy"), None);
        assert!(is_go("main.F[...]") && !is_go("cache_service::main"));
        assert!(is_go_std_shaped("net/http") && is_go_std_shaped("runtime"));
        assert!(!is_go_std_shaped("main") && !is_go_std_shaped("github.com/acme/cache"));
    }

    #[test]
    fn frame_paths_drop_generics_qualification_and_closures() {
        for (name, path) in [
            (
                "<alloc::raw_vec::RawVecInner<_>>::reserve::do_reserve_and_handle::<alloc::alloc::Global>",
                "alloc::raw_vec::RawVecInner::reserve::do_reserve_and_handle",
            ),
            (
                "hashbrown::raw::RawTable<T,A>::reserve_rehash",
                "hashbrown::raw::RawTable::reserve_rehash",
            ),
            (
                "<alloc::string::String as core::fmt::Write>::write_str",
                "alloc::string::String::write_str",
            ),
            (
                "<&mut alloc::string::String as core::fmt::Write::write_fmt::SpecWriteFmt>::spec_write_fmt",
                "alloc::string::String::spec_write_fmt",
            ),
            (
                "alloc::vec::Vec<T,A>::extend_trusted::{{closure}}",
                "alloc::vec::Vec::extend_trusted",
            ),
            (
                "<T as alloc::vec::spec_from_elem::SpecFromElem>::from_elem",
                "alloc::vec::spec_from_elem::SpecFromElem::from_elem",
            ),
            ("alloc::slice::<impl [T]>::repeat", "alloc::slice::repeat"),
            (
                "core::iter::adapters::map::map_fold<fn() -> u8, F>::{closure#0}",
                "core::iter::adapters::map::map_fold",
            ),
            ("runtime.mallocgc", "runtime.mallocgc"),
        ] {
            assert_eq!(frame_path(name), path, "{name}");
        }
    }
}
