//! Sluice's allocator: mimalloc instead of the system allocator, because a gateway allocates
//! and frees small buffers on several threads at once, where glibc's arenas contend (measured
//! in BENCHMARKS.md); tuned to give memory back, so an idle gateway shrinks back.
//!
//! Two of mimalloc's options differ from its defaults (BENCHMARKS.md, "Allocator settings":
//! idle RSS 51 → 25 MB, 10,000 open streams 0.8 → 0.5 GB, for 1–3 % more CPU per request):
//! - `arena_eager_commit = 0`: the arena is committed as it is used. mimalloc reads this
//!   before `main`, so it is set when mimalloc is built (`.cargo/config.toml` passes
//!   `-DMI_DEFAULT_ARENA_EAGER_COMMIT=0` to its C sources).
//! - `purge_delay = 0`: freed memory goes back to the system at once instead of after a delay
//!   and only when the allocator next runs; set by [`return_freed_memory_promptly`].
//!
//! An operator's `MIMALLOC_ARENA_EAGER_COMMIT` / `MIMALLOC_PURGE_DELAY` win over both.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (libmimalloc-sys names only the v2
/// options).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets `purge_delay = 0` unless `MIMALLOC_PURGE_DELAY` says otherwise. Call first thing in
/// `main`.
#[allow(unsafe_code)]
pub fn return_freed_memory_promptly() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: `mi_option_set` accepts any option index and value (it ignores an index it
        // does not know) and may be called at any time from any thread.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_is_set_to_zero() {
        // The test harness's environment has no MIMALLOC_PURGE_DELAY (CI sets none).
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            println!("skipped: MIMALLOC_PURGE_DELAY is set in this environment");
            return;
        }
        super::return_freed_memory_promptly();
        #[allow(unsafe_code)]
        // SAFETY: reading an option is valid at any time, from any thread.
        let delay = unsafe { libmimalloc_sys::mi_option_get(super::PURGE_DELAY) };
        assert_eq!(delay, 0);
    }
}
