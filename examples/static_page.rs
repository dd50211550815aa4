//! The baseline of `scripts/bench-page`: one HTML page, read once from a file, served from
//! memory on every path by the same stack as the app (tokio, hyper, axum). The page's own
//! figures are read as a share of this one, measured in the same run on the same machine.
//!
//! `static_page FILE ADDR`

use std::process::ExitCode;

use axum::{body::Bytes, http::header::CONTENT_TYPE, Router};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, addr] = args.as_slice() else {
        eprintln!("usage: static_page FILE ADDR");
        return ExitCode::from(2);
    };
    let page = match std::fs::read(file) {
        Ok(bytes) => Bytes::from(bytes),
        Err(e) => {
            eprintln!("static_page: cannot read {file}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let app = Router::new().fallback(move || {
        let page = page.clone();
        async move { ([(CONTENT_TYPE, "text/html; charset=utf-8")], page) }
    });
    let listener = match tokio::net::TcpListener::bind(addr.as_str()).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("static_page: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match axum::serve(listener, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("static_page: {e}");
            ExitCode::FAILURE
        }
    }
}
