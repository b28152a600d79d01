//! Generates Rust bindings for the httpd and APR headers installed by `apache2-dev`.
//!
//! Include directories and preprocessor defines come from `apxs -q`, so the bindings always match
//! the installed Apache. Only `ap_*` / `apr_*` items and the types they use are generated.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn apxs(var: &str) -> String {
    let out = Command::new("apxs")
        .args(["-q", var])
        .output()
        .unwrap_or_else(|e| panic!("cannot run `apxs -q {var}` ({e}); install apache2-dev"));
    assert!(out.status.success(), "`apxs -q {var}` failed; install apache2-dev");
    String::from_utf8(out.stdout).expect("apxs output is not UTF-8").trim().to_string()
}

fn main() {
    println!("cargo:rerun-if-changed=apache-headers/wrapper.h");
    println!("cargo:rerun-if-changed=build.rs");

    let mut clang_args = Vec::new();
    for var in ["INCLUDEDIR", "APR_INCLUDEDIR", "APU_INCLUDEDIR"] {
        let dir = apxs(var);
        if !dir.is_empty() {
            clang_args.push(format!("-I{dir}"));
        }
    }
    for flag in apxs("EXTRA_CPPFLAGS").split_whitespace() {
        if flag.starts_with("-D") || flag.starts_with("-I") {
            clang_args.push(flag.to_string());
        }
    }

    let bindings = bindgen::Builder::default()
        .header("apache-headers/wrapper.h")
        .clang_args(&clang_args)
        .allowlist_function("ap_.*|apr_.*|unixd_.*")
        .allowlist_type("authn_provider|authz_provider|authn_status|authz_status|unixd_config_rec|ap_listen_rec|request_rec|server_rec|conn_rec|module|command_rec|cmd_parms|ap_.*|apr_.*|unixd_.*")
        .allowlist_var("ap_.*|apr_.*|AP_.*|APR_.*|MODULE_MAGIC_.*|OR_.*|RSRC_CONF|ACCESS_CONF|NOT_IN_.*|GLOBAL_ONLY|HTTP_.*|OK|DECLINED|DONE|M_.*|APLOG_.*|REQUEST_.*|DEFAULT_.*|SUSPENDED|PROXYREQ_.*|MPM_.*|OPT_.*|AUTHN_.*|AUTHZ_.*|SATISFY_.*")
        .blocklist_function(".*vprintf.*|.*vformatter.*|ap_vrprintf|apr_pvsprintf|ap_log_.*_va|.*_va")
        .blocklist_type("max_align_t")
        .default_macro_constant_type(bindgen::MacroTypeVariation::Signed)
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("bindgen failed on apache-headers/wrapper.h (is libclang-dev installed?)");

    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("apache_bindings.rs");
    bindings.write_to_file(&out).expect("cannot write bindings");

    // The interpreter pyo3 links against: Python computes sys.prefix from its path at start-up.
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    let python = env::var("PYO3_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
    println!("cargo:rustc-env=WSGI_PYTHON_EXECUTABLE={python}");

    // Keep the module and libpython mapped across Apache's unload/reload between config passes.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}
