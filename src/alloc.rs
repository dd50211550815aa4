//! The server's memory allocator: mimalloc. A request's memory is often freed on another
//! thread than the one that allocated it, which glibc's allocator pays for with locks and
//! consolidation (about a fifth of the billing page's CPU under load).
//!
//! A library does not choose the allocator; the binaries that serve do:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: billfold::alloc::Allocator = billfold::alloc::ALLOCATOR;
//!
//! fn main() -> ExitCode {
//!     billfold::alloc::run("billfold", serve())
//! }
//! ```
//!
//! Arenas are committed as they are used, not up front (`MI_DEFAULT_ARENA_EAGER_COMMIT=0`,
//! set where mimalloc is compiled: `.cargo/config.toml`, since that option is read before
//! `main`).

// mimalloc's option table is set and read through its C API.
#![allow(unsafe_code)]

pub type Allocator = mimalloc::MiMalloc;
pub const ALLOCATOR: Allocator = mimalloc::MiMalloc;

/// Freed memory goes back to the system at once rather than after a second: a smaller
/// resident set at no measured cost in speed.
pub fn tune() {
    // `mi_option_purge_delay` in `mi_option_e` of mimalloc 3, as the pinned libmimalloc-sys
    // builds it (`include/mimalloc.h`); the crate exports no name for it.
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: a plain setter of mimalloc's option table, read on each purge.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
}

/// Tunes the allocator, then runs `main` on a multi-threaded tokio runtime: what a serving
/// binary's `main` does.
pub fn run(
    name: &str,
    main: impl std::future::Future<Output = std::process::ExitCode>,
) -> std::process::ExitCode {
    tune();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(main),
        Err(e) => {
            eprintln!("{name}: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_is_the_option_we_set() {
        super::tune();
        // SAFETY: a plain getter of mimalloc's option table.
        let delay = unsafe { libmimalloc_sys::mi_option_get(15) };
        assert_eq!(delay, 0);
        // Its neighbours keep their defaults: 15 is the purge delay, not another option.
        // SAFETY: as above.
        let (before, after) = unsafe {
            (
                libmimalloc_sys::mi_option_get(14),
                libmimalloc_sys::mi_option_get(16),
            )
        };
        assert_eq!(
            (before, after),
            (1, 0),
            "deprecated_eager_commit_delay, use_numa_nodes"
        );
    }

    #[test]
    fn arenas_are_not_committed_up_front() {
        // `mi_option_arena_eager_commit` (4): 0 only when `.cargo/config.toml`'s CFLAGS
        // reached mimalloc's build (its own default, 2, commits whole arenas on Linux).
        // SAFETY: a plain getter of mimalloc's option table.
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(4) }, 0);
    }
}
