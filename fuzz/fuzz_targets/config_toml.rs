//! The TOML configuration on hostile input: `Config::from_parts` parses, applies the
//! (empty) environment and validates. Any text must give a configuration or an error,
//! never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(config) = capstan::Config::from_parts(text, Vec::new()) {
        // What the server derives from a valid configuration at start-up.
        let _ = config.default_home_domain();
        let _ = config.web_auth_endpoint();
        let _ = config.kyc_server();
        let _ = config.direct_payment_server();
        let _ = config.anchor_quote_server();
    }
});
