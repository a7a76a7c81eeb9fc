use std::{env, fs, io, path::*, process::Command};

use cc::Build;

fn main() {
    let project = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap())
        .canonicalize()
        .unwrap();

    println!("cargo:rerun-if-env-changed=GLOMMIO_LIBURING_DIR");
    let liburing = match env::var("GLOMMIO_LIBURING_DIR") {
        Ok(path) => PathBuf::from(&path)
            .canonicalize()
            .unwrap_or_else(|e| panic!("GLOMMIO_LIBURING_DIR={path}: {e}")),
        Err(_) => bundled_liburing(&project),
    };

    // Run the configure script in OUT_DIR to get `compat.h`
    let configured_include = configure(&liburing);

    let src = liburing.join("src");

    // liburing
    Build::new()
        .file(src.join("setup.c"))
        .file(src.join("queue.c"))
        .file(src.join("syscall.c"))
        .file(src.join("register.c"))
        .include(src.join("include"))
        .include(&configured_include)
        .extra_warnings(false)
        .compile("uring");

    // (our additional, linkable C bindings)
    Build::new()
        .file(project.join("rusturing.c"))
        .include(src.join("include"))
        .include(&configured_include)
        .compile("rusturing");
}

/// The liburing sources next to this file. They ship in the crate (and in
/// corecast's tree), so git is only a fallback for a glommio git checkout
/// whose submodule was never fetched: a source archive or a machine
/// without git must build too.
fn bundled_liburing(project: &Path) -> PathBuf {
    let liburing = project.join("liburing");
    if liburing.join("src/setup.c").is_file() {
        return liburing;
    }
    let fetched = Command::new("git")
        .args(["submodule", "update", "--init"])
        .current_dir(project)
        .status();
    match fetched {
        Ok(status) if status.success() && liburing.join("src/setup.c").is_file() => liburing,
        Ok(status) => panic!(
            "liburing sources missing in {} and `git submodule update --init` did not \
             provide them ({status}); set GLOMMIO_LIBURING_DIR to a liburing source tree",
            liburing.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => panic!(
            "liburing sources missing in {} and git is not installed to fetch them; \
             set GLOMMIO_LIBURING_DIR to a liburing source tree",
            liburing.display()
        ),
        Err(e) => panic!("cannot run git to fetch liburing: {e}"),
    }
}

fn configure(liburing: &Path) -> PathBuf {
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap())
        .canonicalize()
        .unwrap();
    fs::copy(liburing.join("configure"), out_dir.join("configure")).unwrap();
    fs::create_dir_all(out_dir.join("src/include/liburing")).unwrap();
    // The script's probes default to `gcc`; give it the compiler the cc
    // crate found (CC, else `cc`), so a machine with only clang works too.
    let compiler = Build::new().get_compiler();
    let output = Command::new("sh")
        .arg("./configure")
        .env("CC", compiler.path())
        .current_dir(&out_dir)
        .output()
        .expect("cannot run liburing's configure script with `sh`");
    if !output.status.success() || !out_dir.join("src/include/liburing/compat.h").is_file() {
        panic!(
            "liburing's configure script failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    out_dir.join("src/include")
}
