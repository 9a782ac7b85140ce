//! Baseline: an echo server with a thread per connection and blocking I/O.

use std::io::{Read, Write};
use std::net::TcpStream;

fn serve(mut stream: TcpStream) {
    let mut buf = vec![0; selectloop_bench::CHUNK];
    while let Ok(n @ 1..) = stream.read(&mut buf) {
        if stream.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

fn main() -> std::io::Result<()> {
    selectloop_bench::raise_fd_limit();
    let listener = selectloop_bench::listen(&selectloop_bench::server_addr(), false)?;
    selectloop_bench::announce(listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        // Small stacks: 10,000 connections are 10,000 threads.
        std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || serve(stream))?;
    }
}
