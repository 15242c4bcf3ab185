//! The local terminal for `aicockpit workspace shell`: raw mode while a
//! remote shell runs, window-size changes forwarded, restored on every exit.

use std::io::{Read, Write};

use aicockpit_workspace::ExecIo;
use anyhow::Result;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

/// The terminal's size as (cols, rows), if stdout is a terminal.
pub fn window_size() -> Option<(u16, u16)> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize struct we own.
    let result = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    (result == 0 && size.ws_col > 0).then_some((size.ws_col, size.ws_row))
}

/// Raw mode on stdin until dropped.
pub struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    pub fn enable() -> Result<RawMode> {
        // SAFETY: tcgetattr/tcsetattr read and write a termios struct we own.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut saved) != 0 {
                anyhow::bail!(
                    "cannot read the terminal's settings: {}",
                    std::io::Error::last_os_error()
                );
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) != 0 {
                anyhow::bail!(
                    "cannot put the terminal in raw mode: {}",
                    std::io::Error::last_os_error()
                );
            }
            Ok(RawMode { saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `enable`.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved);
        }
    }
}

/// Connect the local terminal to a started command until its output ends.
pub async fn attach(io: ExecIo) -> Result<Option<i64>> {
    let ExecIo {
        mut output,
        mut input,
        resize,
        exit_code,
        ..
    } = io;
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    // Stdin is read on a plain thread: a blocking read cannot be cancelled, and
    // the thread simply ends with the process.
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stdin.read(&mut buffer) {
            if n == 0 || sender.blocking_send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
    let mut stdout = std::io::stdout();
    loop {
        tokio::select! {
            chunk = output.next() => match chunk {
                Some(Ok((_, bytes))) => {
                    stdout.write_all(&bytes)?;
                    stdout.flush()?;
                }
                Some(Err(error)) => return Err(error.into()),
                None => break,
            },
            Some(bytes) = receiver.recv() => {
                input.write_all(&bytes).await?;
                input.flush().await?;
            }
            Some(()) = winch.recv() => {
                if let Some((cols, rows)) = window_size() {
                    let _ = resize(cols, rows).await;
                }
            }
        }
    }
    Ok(exit_code.await)
}
