//! The `hogsvm` command line: a thin layer over the library. Errors print one line and exit 2.

mod cli;

/// On SIGINT, SIGTERM or SIGHUP: remove the temporary files of unfinished writes (destructors
/// do not run when a signal ends the process), then end as the signal would have.
fn clean_up_on_signals() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            hogsvm::io::remove_temp_files();
            let _ = signal_hook::low_level::emulate_default_handler(sig);
            std::process::exit(128 + sig);
        }
    });
}

fn main() {
    clean_up_on_signals();
    if let Err(e) = cli::run() {
        // One line: the error and its causes, joined.
        let mut msg = e.to_string();
        for cause in e.chain().skip(1) {
            let c = cause.to_string();
            if !msg.contains(&c) {
                msg.push_str(": ");
                msg.push_str(&c);
            }
        }
        eprintln!("hogsvm: error: {}", msg.replace('\n', " "));
        std::process::exit(2);
    }
}
