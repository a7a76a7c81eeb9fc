//! `config_file` oracle: the `--config` loader on arbitrary bytes.

use crate::config::{self, LoadError, Loaded};

/// What the file is called in the oracle's command line and errors.
const PATH: &str = "fuzz.toml";

/// `config_file`: the bytes are a config file. Loading never panics; a
/// refusal is one `config fuzz.toml: ...` line (never a usage error: file
/// values reach clap only after each passed its flag's parser); a loaded
/// config validates or says why, resolves on two CPUs or says why, and its
/// printout (`--check-config`, secrets shown) loads back to the same config.
/// Namespace lookups answer for any channel, and a channel without `:`
/// always has options.
pub fn check_config_file(data: &[u8]) {
    let loaded = match load(data.to_vec()) {
        Ok(loaded) => loaded,
        Err(LoadError::Invalid(e)) => {
            let line = e.to_string();
            assert!(!line.contains('\n'), "error on two lines: {line:?}");
            assert!(line.starts_with("config fuzz.toml: "), "{line}");
            return;
        }
        Err(LoadError::Usage(e)) => panic!("a file value became a usage error: {e}"),
    };
    let config = &loaded.config;
    let _ = config.validate();
    let _ = config.clone().resolve(&[0, 1], 4096);
    let printed = loaded.to_toml(false);
    match load(printed.clone().into_bytes()) {
        Ok(again) => assert_eq!(again.config, loaded.config, "printout:\n{printed}"),
        Err(e) => panic!("the printout does not load: {e}\n{printed}"),
    }
    let namespaces = &config.namespaces;
    assert!(namespaces.lookup("plain").is_some());
    let channel = String::from_utf8_lossy(data);
    let _ = namespaces.lookup(&channel);
    for (name, options) in namespaces.named() {
        assert_eq!(namespaces.lookup(&format!("{name}:x")), Some(options));
    }
}

fn load(text: Vec<u8>) -> Result<Loaded, LoadError> {
    config::load_with(["corecast", "--config", PATH], |_| Ok(text))
}
