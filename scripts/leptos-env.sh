# The environment cargo-leptos builds with. Source it before cargo test / clippy / nextest so
# they reuse cargo-leptos's build instead of rebuilding everything with other flags.
export LEPTOS_OUTPUT_NAME=billfold
export LEPTOS_SITE_ROOT=target/site
export LEPTOS_SITE_PKG_DIR=pkg
export LEPTOS_SITE_ADDR=127.0.0.1:3000
export LEPTOS_RELOAD_PORT=3001
export LEPTOS_LIB_DIR=.
export LEPTOS_BIN_DIR=.
export LEPTOS_JS_MINIFY=false
export LEPTOS_HASH_FILES=false
export RUSTFLAGS="--cfg erase_components"
