//! deploy/ agrees with itself and with the binary: the Kubernetes manifests name one image, one
//! admin port, the probes the admin server serves and flags the proxy has; the Dockerfile builds
//! with the release script's command; the systemd unit is notify-type and hardened; the shell
//! scripts pass shellcheck.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::PROXY_BIN;
use serde_yaml::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Value {
    serde_yaml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for key in path {
        cur = &cur[*key];
    }
    cur.as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string: {cur:?}"))
}

fn seq(v: &Value) -> &Vec<Value> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
}

fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    seq(list)
        .iter()
        .find(|c| c["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no item named {name} in {list:?}"))
}

/// Every `--flag` the proxy's run command accepts, from its own `--help`.
fn proxy_flags() -> BTreeSet<String> {
    let out = Command::new(PROXY_BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == '[')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_owned)
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    seq(v)
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

/// The value following `flag` in `args`.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).map(String::as_str)
}

/// Checks a proxy container (sidecar) against the image, admin port, flags and config mount.
fn check_proxy_container(
    c: &Value,
    image_repo: &str,
    admin_port: u64,
    flags: &BTreeSet<String>,
    config_path: &str,
) {
    let image = s(c, &["image"]);
    assert!(
        image.starts_with(&format!("{image_repo}:")),
        "{image} is {image_repo}"
    );
    let args = strings(&c["args"]);
    for a in args.iter().filter(|a| a.starts_with("--")) {
        assert!(
            flags.contains(a),
            "{a} is a flag of rds-iam-proxy: {flags:?}"
        );
    }
    assert_eq!(flag_value(&args, "--config"), Some(config_path));
    let mount = s(
        named(&c["volumeMounts"], "rds-iam-proxy-config"),
        &["mountPath"],
    );
    assert_eq!(format!("{mount}/config.yaml"), config_path);
    // The admin endpoint is on loopback, so the probes run inside the pod.
    for (probe, endpoint) in [("startupProbe", "startup"), ("livenessProbe", "liveness")] {
        let command = strings(&c[probe]["exec"]["command"]);
        assert_eq!(
            command[0], "/usr/local/bin/rds-iam-proxy",
            "{probe}: {command:?}"
        );
        assert_eq!(command[1..3], ["probe", endpoint], "{probe}: {command:?}");
        assert_eq!(
            flag_value(&command, "--admin"),
            Some(format!("127.0.0.1:{admin_port}").as_str()),
            "{probe}: {command:?}"
        );
    }
    assert!(c["resources"]["requests"]["cpu"].is_string());
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert_eq!(c["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    assert_eq!(
        c["securityContext"]["allowPrivilegeEscalation"].as_bool(),
        Some(false)
    );
}

#[test]
fn kubernetes_manifests_agree_with_each_other_and_with_the_proxy() {
    let flags = proxy_flags();
    assert!(flags.contains("--admin-listen"), "{flags:?}");
    let kustomization = yaml("deploy/kubernetes/kustomization.yaml");
    let resources = strings(&kustomization["resources"]);
    for r in &resources {
        yaml(&format!("deploy/kubernetes/{r}"));
    }
    let image_repo = s(&kustomization["images"][0], &["name"]).to_owned();

    // The proxy's settings, loaded by the proxy's own config code.
    let configmap = yaml("deploy/kubernetes/configmap.yaml");
    let config_text = s(&configmap, &["data", "config.yaml"]);
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("config.yaml");
    std::fs::write(&config_file, config_text).unwrap();
    let settings = rds_iam_config::load_file_only(&config_file)
        .unwrap_or_else(|e| panic!("configmap config.yaml: {e}"));
    let admin = settings.admin_listen.expect("admin_listen is set");
    let admin_port = u64::from(admin.port());
    assert!(
        settings.min_sigterm_delay + settings.max_sigterm_delay
            <= std::time::Duration::from_secs(45)
    );
    let listen = match &settings.targets[0].listen[0] {
        rds_iam_config::ListenAddr::Tcp(a) => *a,
        other => panic!("first listen is TCP: {other:?}"),
    };
    let config_path = "/etc/rds-iam-proxy/config/config.yaml";

    let sa = yaml("deploy/kubernetes/serviceaccount.yaml");
    let sa_name = s(&sa, &["metadata", "name"]);
    assert!(s(
        &sa,
        &["metadata", "annotations", "eks.amazonaws.com/role-arn"]
    )
    .starts_with("arn:aws:iam::"));

    // Deployment: native sidecar.
    let deployment = yaml("deploy/kubernetes/deployment.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(s(pod, &["serviceAccountName"]), sa_name);
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(
        s(&configmap, &["metadata", "name"]),
        s(
            named(&pod["volumes"], "rds-iam-proxy-config"),
            &["configMap", "name"]
        )
    );
    let sidecar = named(&pod["initContainers"], "rds-iam-proxy");
    assert_eq!(s(sidecar, &["restartPolicy"]), "Always");
    check_proxy_container(sidecar, &image_repo, admin_port, &flags, config_path);
    let app = named(&pod["containers"], "app");
    assert_eq!(
        s(named(&app["env"], "PGHOST"), &["value"]),
        listen.ip().to_string()
    );
    assert_eq!(
        s(named(&app["env"], "PGPORT"), &["value"]),
        listen.port().to_string()
    );
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        std::time::Duration::from_secs(grace)
            > settings.min_sigterm_delay + settings.max_sigterm_delay
    );

    // Job: plain sidecar ended by the job's container.
    let job = yaml("deploy/kubernetes/job.yaml");
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(s(pod, &["serviceAccountName"]), sa_name);
    assert_eq!(s(pod, &["restartPolicy"]), "Never");
    let proxy = named(&pod["containers"], "rds-iam-proxy");
    check_proxy_container(proxy, &image_repo, admin_port, &flags, config_path);
    let args = strings(&proxy["args"]);
    assert!(
        args.iter().any(|a| a == "--exit-zero-on-sigterm"),
        "the quit must count as success: {args:?}"
    );
    assert!(
        args.iter().any(|a| a == "--quitquitquit"),
        "the job ends the proxy over /quitquitquit: {args:?}"
    );
    let worker = seq(&pod["containers"])
        .iter()
        .find(|c| c["name"].as_str() != Some("rds-iam-proxy"))
        .unwrap();
    let script = strings(&worker["command"]).join("\n");
    assert!(
        script.contains(&format!(
            "curl -fsS -X POST http://127.0.0.1:{admin_port}/quitquitquit"
        )),
        "{script}"
    );
    assert!(
        script.contains(&format!("http://127.0.0.1:{admin_port}/startup")),
        "{script}"
    );

    // Pod Identity overlay: the base, minus the IRSA annotation.
    let overlay = yaml("deploy/kubernetes/pod-identity/kustomization.yaml");
    assert_eq!(strings(&overlay["resources"]), ["../"]);
    let patch = s(&overlay["patches"][0], &["patch"]);
    assert!(
        patch.contains("path: /metadata/annotations/eks.amazonaws.com~1role-arn"),
        "{patch}"
    );
    assert_eq!(s(&overlay["patches"][0], &["target", "name"]), sa_name);
}

/// The `cargo build` command of scripts/build-release, without `exec` and `"$@"`.
fn release_build_command() -> String {
    let script = read("scripts/build-release");
    let line = script
        .lines()
        .find(|l| l.trim_start().starts_with("exec cargo build"))
        .expect("scripts/build-release runs cargo build");
    line.trim()
        .trim_start_matches("exec ")
        .trim_end_matches("\"$@\"")
        .trim()
        .to_owned()
}

#[test]
fn dockerfile_builds_like_the_release_script_and_runs_unprivileged() {
    let dockerfile = read("deploy/Dockerfile");
    let build = release_build_command();
    assert!(
        build.contains("--release")
            && build.contains("--locked")
            && build.contains("-p rds-iam-proxy"),
        "{build}"
    );
    // RUN lines, with continuation lines joined.
    let joined = dockerfile.replace("\\\n", " ");
    let runs: Vec<&str> = joined.lines().filter(|l| l.starts_with("RUN ")).collect();
    assert!(
        runs.iter()
            .any(|r| r["RUN ".len()..].trim_start().starts_with(&build)),
        "a RUN line starts with `{build}`: {runs:#?}"
    );
    let froms: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert!(
        froms[0].starts_with("FROM rust:1-bookworm AS build"),
        "{froms:?}"
    );
    let last = froms.last().unwrap();
    assert!(
        last.contains("debian:bookworm-slim") || last.contains("distroless/cc"),
        "{last}"
    );
    assert!(
        dockerfile.contains("https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem")
    );
    assert!(dockerfile.contains("/etc/rds-iam-proxy/global-bundle.pem"));
    let user = dockerfile
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER line");
    let uid = user["USER ".len()..].split(':').next().unwrap().trim();
    assert!(uid != "0" && uid != "root", "{user}");
    // The UID the Kubernetes manifests run as.
    let deployment = yaml("deploy/kubernetes/deployment.yaml");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
            .as_u64()
            .map(|u| u.to_string())
            .as_deref(),
        Some(uid)
    );
    let entrypoint = dockerfile
        .lines()
        .find(|l| l.starts_with("ENTRYPOINT"))
        .unwrap();
    assert!(
        entrypoint.contains("/usr/local/bin/rds-iam-proxy"),
        "{entrypoint}"
    );
    assert!(
        dockerfile.contains("COPY --from=build /out/rds-iam-proxy /usr/local/bin/rds-iam-proxy")
    );
}

#[test]
fn systemd_unit_is_notify_type_hardened_and_its_env_file_names_real_options() {
    let unit = read("deploy/systemd/rds-iam-proxy.service");
    let keys: Vec<(String, String)> = unit
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let has = |k: &str, v: &str| keys.iter().any(|(kk, vv)| kk == k && vv == v);
    for (k, v) in [
        ("Type", "notify"),
        ("EnvironmentFile", "/etc/rds-iam-proxy/env"),
        ("NoNewPrivileges", "yes"),
        ("LimitCORE", "0"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("DynamicUser", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("CapabilityBoundingSet", ""),
        ("ExecStart", "/usr/local/bin/rds-iam-proxy"),
    ] {
        assert!(has(k, v), "{k}={v} in the unit");
    }
    let flags = proxy_flags();
    let env = read("deploy/systemd/rds-iam-proxy.env");
    let vars: Vec<&str> = env
        .lines()
        .map(|l| l.trim_start_matches("# "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("RDS_IAM_PROXY_"))
        .collect();
    assert!(vars.contains(&"RDS_IAM_PROXY_TARGETS"), "{vars:?}");
    for var in vars.iter().filter(|v| **v != "RDS_IAM_PROXY_TARGETS") {
        let flag = format!(
            "--{}",
            var["RDS_IAM_PROXY_".len()..]
                .to_ascii_lowercase()
                .replace('_', "-")
        );
        assert!(
            flags.contains(&flag),
            "{var} is the variable of {flag}: {flags:?}"
        );
    }
}

#[test]
fn iam_examples_are_the_policy_and_sql_a_user_needs() {
    let policy: serde_json::Value = serde_json::from_str(&read("deploy/iam/policy.json")).unwrap();
    let statement = &policy["Statement"][0];
    assert_eq!(statement["Action"], "rds-db:connect");
    let arn = statement["Resource"][0].as_str().unwrap();
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    assert_eq!(&parts[..3], ["arn", "aws", "rds-db"], "{arn}");
    assert!(
        parts[5].starts_with("dbuser:cluster-") && parts[5].ends_with("/iam_user"),
        "{arn}"
    );
    let sql = read("deploy/iam/grant.sql");
    assert!(sql.contains("CREATE USER iam_user WITH LOGIN;"));
    assert!(sql.contains("GRANT rds_iam TO iam_user;"));
}

/// scripts/*, .ci/run and deploy/**/*.sh.
fn shell_scripts() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "sh") {
                out.push(path);
            }
        }
    }
    let root = repo();
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(root.join("scripts"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    scripts.push(root.join(".ci/run"));
    walk(&root.join("deploy"), &mut scripts);
    scripts.sort();
    scripts
}

#[test]
fn shell_scripts_pass_shellcheck() {
    let scripts = shell_scripts();
    assert!(
        scripts.iter().any(|p| p.ends_with("scripts/build-release")),
        "{scripts:?}"
    );
    let output = match Command::new("shellcheck").arg("--version").output() {
        Ok(_) => Command::new("shellcheck")
            .arg("--external-sources")
            .args(&scripts)
            .current_dir(repo())
            .output()
            .unwrap(),
        Err(e) => {
            // scripts/setup installs it; say loudly that nothing was checked.
            eprintln!("SKIPPED: shellcheck is not installed ({e}); run scripts/setup");
            return;
        }
    };
    assert!(
        output.status.success(),
        "shellcheck {scripts:?}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

// The README showed `scripts/setup && scripts/test`: two commands for a newcomer to run.
#[test]
fn readme_runs_the_tests_with_one_command_that_does_its_own_setup() {
    let readme = read("README.md");
    let after = readme
        .split_once("Run the tests")
        .expect("README has a 'Run the tests' paragraph")
        .1;
    let block = after
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("a sh block follows")
        .0;
    assert_eq!(block.trim(), "scripts/test", "{block}");
    let script = read("scripts/test");
    let setup = script
        .find("scripts/setup")
        .expect("scripts/test runs scripts/setup");
    let cargo = script
        .find("cargo test")
        .expect("scripts/test runs cargo test");
    assert!(setup < cargo, "setup runs before the tests:\n{script}");
}
