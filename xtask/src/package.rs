//! `cargo xtask package`: the release binary, its systemd unit, the default configuration and the
//! rules, as a tarball and a Debian package in target/package/. Both are then installed into
//! throwaway roots (the tarball with the `tar` command deploy/README.md gives, the .deb with dpkg,
//! maintainer scripts included) and checked file by file, so a package that builds but would not
//! install is an error here rather than on a host.
//!
//! The .deb comes from dpkg-deb and a staging tree rather than from cargo-deb: dpkg-deb is on
//! every Debian machine while cargo-deb is a long compile, and the maintainer scripts are
//! debhelper's systemd snippets either way.

use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail, ensure};

use crate::{run_checked, workspace_root};

const NAME: &str = "monitor";
/// xtask takes its version from the workspace, like monitor; the built binary is checked to agree.
const VERSION: &str = env!("CARGO_PKG_VERSION");
const LICENSE: &str = env!("CARGO_PKG_LICENSE");
/// The Debian revision of a package built from this tree (the upstream version is the workspace's).
const DEB_REVISION: &str = "1";
const UNIT: &str = "monitor.service";
/// Admins edit it: dpkg keeps their version on upgrade and asks when both changed.
const CONFFILE: &str = "etc/monitor/monitor.yaml";
const BINARY: &str = "usr/bin/monitor";

const SYNOPSIS: &str = "runtime security monitor for Linux (eBPF)";
const DESCRIPTION: &str = "\
eBPF sensors on syscall tracepoints watch every process execution, file open
and network connection on the host; the daemon follows each process's
ancestry and container, evaluates Falco-compatible rules and delivers
Falco-shaped alerts to stdout, files, syslog, HTTP (falcosidekick, Splunk,
Elasticsearch) and NATS JetStream, at least once.";

enum Content {
    Dir,
    File(Vec<u8>),
}

/// One file or directory as installed, path relative to /.
struct Entry {
    path: String,
    mode: u32,
    content: Content,
}

fn dir(path: &str) -> Entry {
    Entry { path: path.to_owned(), mode: 0o755, content: Content::Dir }
}

fn file(path: &str, mode: u32, data: Vec<u8>) -> Entry {
    Entry { path: path.to_owned(), mode, content: Content::File(data) }
}

pub fn run() -> Result<()> {
    crate::setup::setup()?;
    let built = crate::build_release()?;

    let out = workspace_root().join("target/package");
    let work = out.join("work");
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("cannot clear {}", work.display()))?;
    }
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;

    let (arch, deb_arch) = arches()?;
    let epoch = source_date_epoch()?;
    let binary = stripped(&built, &work)?;
    let copyright = copyright(epoch)?;
    let (common, tar_only, deb_only) = layout(binary, &copyright, epoch)?;

    let top = format!("{NAME}-{VERSION}-{arch}");
    let tarball = out.join(format!("{top}.tar.gz"));
    let tar_entries = sorted(common.iter().chain(&tar_only));
    write_tarball(&tarball, &top, &tar_entries, epoch)?;

    let deb_version = deb_version(VERSION);
    let deb = out.join(format!("{NAME}_{deb_version}_{deb_arch}.deb"));
    let deb_entries = sorted(common.iter().chain(&deb_only));
    build_deb(&deb, &work, &deb_entries, &deb_version, deb_arch, epoch)?;

    let checked = check_tarball(&tarball, &top, &tar_entries, epoch, &work)
        .and_then(|()| check_deb(&deb, &deb_entries, &work))
        .and_then(|()| lintian(&deb));
    if let Err(e) = checked {
        // A package that failed its check must not be picked up from target/package/ later.
        let _ = fs::remove_file(&tarball);
        let _ = fs::remove_file(&deb);
        return Err(e.context(format!(
            "the packages failed their check and were deleted; the staging tree and install roots are left in {}",
            work.display()
        )));
    }

    fs::remove_dir_all(&work).with_context(|| format!("cannot remove {}", work.display()))?;
    eprintln!("xtask: packages (installed into throwaway roots and checked):");
    for path in [&tarball, &deb] {
        let size = fs::metadata(path)?.len();
        eprintln!("  {}  {:.1} MiB ({size} bytes)", path.display(), size as f64 / (1024.0 * 1024.0));
    }
    Ok(())
}

fn arches() -> Result<(&'static str, &'static str)> {
    // xtask runs on the machine the release build targets, so its own architecture is the
    // binary's.
    match std::env::consts::ARCH {
        "x86_64" => Ok(("x86_64", "amd64")),
        "aarch64" => Ok(("aarch64", "arm64")),
        other => bail!(
            "packaging knows x86_64 and aarch64, not {other}: add its Debian name in xtask/src/package.rs"
        ),
    }
}

/// Debian sorts `~` before the release: 0.2.0-rc.1 must become 0.2.0~rc.1 to come before 0.2.0.
fn deb_version(version: &str) -> String {
    format!("{}-{DEB_REVISION}", version.replacen('-', "~", 1))
}

/// Every mtime in both packages, so the same tree packs to the same bytes: SOURCE_DATE_EPOCH
/// (the reproducible-builds convention) or the last commit's time.
fn source_date_epoch() -> Result<u64> {
    if let Ok(s) = std::env::var("SOURCE_DATE_EPOCH") {
        return s.trim().parse().with_context(|| format!("SOURCE_DATE_EPOCH={s} is not a number of seconds"));
    }
    let git = capture(Command::new("git").args(["log", "-1", "--format=%ct"]).current_dir(workspace_root()))
        .context("no SOURCE_DATE_EPOCH and no git history to date the files by: set SOURCE_DATE_EPOCH")?;
    git.trim().parse().with_context(|| format!("git gave {git:?} as the last commit's time"))
}

fn capture(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed with {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    String::from_utf8(out.stdout).with_context(|| format!("{cmd:?} printed something other than UTF-8"))
}

/// The release profile keeps line tables (debug = 1) for backtraces in the build tree; they are
/// most of the binary's size, and the package ships without them. strip rewrites only symbol,
/// debug and comment sections: the kernel programs are a byte array in .rodata and come through.
fn stripped(built: &Path, work: &Path) -> Result<Vec<u8>> {
    let out = work.join(NAME);
    run_checked(
        Command::new("strip")
            .args(["--strip-all", "--remove-section=.comment"])
            .arg("-o")
            .arg(&out)
            .arg(built),
    )
    .context("stripping the binary (strip is in Debian's binutils: `apt-get install binutils`)")?;
    check_version(&out)?;
    fs::read(&out).with_context(|| format!("cannot read {}", out.display()))
}

/// Runs `BIN --version`, which must name the workspace version.
fn check_version(bin: &Path) -> Result<()> {
    let printed = capture(Command::new(bin).arg("--version"))?;
    ensure!(
        printed.trim() == format!("{NAME} {VERSION}"),
        "{} --version printed {:?}, expected \"{NAME} {VERSION}\": the binary is not the one this \
         workspace builds",
        bin.display(),
        printed.trim()
    );
    Ok(())
}

/// What goes in both packages, what only in the tarball, what only in the .deb.
fn layout(binary: Vec<u8>, copyright: &str, epoch: u64) -> Result<(Vec<Entry>, Vec<Entry>, Vec<Entry>)> {
    let root = workspace_root();
    let read =
        |rel: &str| fs::read(root.join(rel)).with_context(|| format!("cannot read {rel} in the source tree"));
    let unit = read("deploy/systemd/monitor.service")?;
    check_exec_start(&unit)?;
    let common = vec![
        dir("etc"),
        dir("etc/monitor"),
        // Loaded after the bundled rules by the default config: where local tuning goes.
        dir("etc/monitor/rules.d"),
        dir("lib"),
        dir("lib/systemd"),
        dir("lib/systemd/system"),
        dir("usr"),
        dir("usr/bin"),
        dir("usr/share"),
        dir("usr/share/doc"),
        dir("usr/share/doc/monitor"),
        dir("usr/share/monitor"),
        dir("usr/share/monitor/rules"),
        file(BINARY, 0o755, binary),
        file(CONFFILE, 0o644, read("deploy/monitor.yaml")?),
        file(&format!("lib/systemd/system/{UNIT}"), 0o644, unit),
        // The binary carries these rules (`bundled`); this copy is to read and to diff, not loaded.
        file("usr/share/monitor/rules/monitor_rules.yaml", 0o644, read("rules/monitor_rules.yaml")?),
        file("usr/share/monitor/sinks.yaml", 0o644, read("deploy/sinks.yaml")?),
        file("usr/share/doc/monitor/README.md", 0o644, read("README.md")?),
        file("usr/share/doc/monitor/rules.md", 0o644, read("rules/README.md")?),
        file("usr/share/doc/monitor/copyright", 0o644, copyright.as_bytes().to_vec()),
    ];
    // Debian systems have the licence text in /usr/share/common-licenses, which the copyright
    // file points to; a tarball may land anywhere, so it carries the text.
    let licence_path = format!("/usr/share/common-licenses/{LICENSE}");
    let licence = fs::read(&licence_path).with_context(|| {
        format!(
            "cannot read {licence_path} (Debian's base-files) for the tarball's copy of the {LICENSE} licence"
        )
    })?;
    let tar_only = vec![file("usr/share/doc/monitor/LICENSE", 0o644, licence)];
    let deb_only = vec![
        file("usr/share/doc/monitor/changelog.Debian.gz", 0o644, gzip(changelog(epoch)?.as_bytes())?),
        dir("usr/share/lintian"),
        dir("usr/share/lintian/overrides"),
        // The package is not uploaded to Debian, so there is no ITP bug for it to close.
        file(
            "usr/share/lintian/overrides/monitor",
            0o644,
            b"monitor: initial-upload-closes-no-bugs\n".to_vec(),
        ),
    ];
    Ok((common, tar_only, deb_only))
}

/// Parents sort before their children, so both archives list a directory before its contents.
fn sorted<'a>(entries: impl Iterator<Item = &'a Entry>) -> Vec<&'a Entry> {
    let mut v: Vec<&Entry> = entries.collect();
    v.sort_by(|a, b| a.path.cmp(&b.path));
    v
}

/// The packages put the binary at /usr/bin/monitor; a unit pointing elsewhere would install a
/// service that cannot start.
fn check_exec_start(unit: &[u8]) -> Result<()> {
    let unit = std::str::from_utf8(unit).context("deploy/systemd/monitor.service is not UTF-8")?;
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .context("deploy/systemd/monitor.service has no ExecStart=")?;
    ensure!(
        exec.split_whitespace().next() == Some(&format!("/{BINARY}")),
        "deploy/systemd/monitor.service runs {exec:?}, but the packages install the binary as /{BINARY}: \
         make ExecStart use /{BINARY}"
    );
    Ok(())
}

/// Debian's machine-readable copyright file. The binary links the Rust crates it depends on
/// statically, so their names and licences are listed too (from Cargo.lock, through cargo tree).
fn copyright(epoch: u64) -> Result<String> {
    let tree = capture(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["tree", "--edges", "normal,no-proc-macro", "--prefix", "none", "--format", "{p}|{l}"])
            .args(["--package", "monitor", "--package", "monitor-ebpf"])
            .current_dir(workspace_root()),
    )
    .context("listing the crates the binary links, for the copyright file")?;
    let mut crates: Vec<String> = tree
        .lines()
        // Workspace members print their path: they are this package, under `Files: *`.
        .filter(|l| !l.is_empty() && !l.contains(" (/"))
        .map(|l| {
            let l = l.trim_end_matches(" (*)");
            let (package, licence) = l.split_once('|').unwrap_or((l, ""));
            let licence = if licence.is_empty() { "see the crate" } else { licence };
            format!(" {}: {licence}", package.replacen(" v", " ", 1))
        })
        .collect();
    crates.sort();
    crates.dedup();
    ensure!(!crates.is_empty(), "cargo tree listed no crates for the copyright file");
    Ok(format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: {NAME}\n\
         Comment: The binary is statically linked with these Rust crates (name, version:\n \
         licence), each under its own copyright:\n\
         {}\n\
         \n\
         Files: *\n\
         Copyright: {} the {NAME} authors\n\
         License: {LICENSE}\n\
         \n\
         License: {LICENSE}\n \
         On Debian systems, the complete text of the licence is in\n \
         /usr/share/common-licenses/{LICENSE}; the tarball carries it as LICENSE.\n",
        crates.join("\n"),
        utc(epoch)?.year()
    ))
}

fn changelog(epoch: u64) -> Result<String> {
    Ok(format!(
        "{NAME} ({}) unstable; urgency=medium\n\n  * Built from the {NAME} source tree by `cargo xtask package`.\n\n -- {}  {}\n",
        deb_version(VERSION),
        maintainer()?,
        rfc2822(epoch)?
    ))
}

/// Debian's own variables (DEBFULLNAME, DEBEMAIL) when set, else the last commit's author.
fn maintainer() -> Result<String> {
    if let (Ok(name), Ok(email)) = (std::env::var("DEBFULLNAME"), std::env::var("DEBEMAIL")) {
        return Ok(format!("{name} <{email}>"));
    }
    let author = capture(
        Command::new("git").args(["log", "-1", "--format=%an <%ae>"]).current_dir(workspace_root()),
    )
    .context(
        "no DEBFULLNAME/DEBEMAIL and no git history to name the maintainer: set DEBFULLNAME and DEBEMAIL",
    )?;
    Ok(author.trim().to_owned())
}

fn utc(epoch: u64) -> Result<jiff::Zoned> {
    let ts = jiff::Timestamp::from_second(epoch as i64).context("SOURCE_DATE_EPOCH out of range")?;
    Ok(ts.to_zoned(jiff::tz::TimeZone::UTC))
}

/// The changelog's date, as dpkg-parsechangelog reads it.
fn rfc2822(epoch: u64) -> Result<String> {
    Ok(jiff::fmt::rfc2822::to_string(&utc(epoch)?)?)
}

/// No name or time in the gzip header, so equal input gives equal bytes.
fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut gz = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::best());
    gz.write_all(data)?;
    Ok(gz.finish()?)
}

/// Built with the tar crate rather than the tar command, so ownership (root:root), modes, mtimes
/// and order are what the code says whatever the build machine's umask, user or file system.
fn write_tarball(path: &Path, top: &str, entries: &[&Entry], epoch: u64) -> Result<()> {
    let create = || -> Result<()> {
        let out = fs::File::create(path)?;
        let gz = flate2::GzBuilder::new().mtime(0).write(out, flate2::Compression::best());
        let mut tar = tar::Builder::new(gz);
        let top_dir = dir("");
        for e in std::iter::once(&top_dir).chain(entries.iter().copied()) {
            let name = if e.path.is_empty() { top.to_owned() } else { format!("{top}/{}", e.path) };
            let mut h = tar::Header::new_gnu();
            h.set_mode(e.mode);
            h.set_uid(0);
            h.set_gid(0);
            h.set_username("root")?;
            h.set_groupname("root")?;
            h.set_mtime(epoch);
            match &e.content {
                Content::Dir => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    tar.append_data(&mut h, &name, std::io::empty())?;
                }
                Content::File(data) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(data.len() as u64);
                    tar.append_data(&mut h, &name, data.as_slice())?;
                }
            }
        }
        tar.into_inner()?.finish()?.sync_all()?;
        Ok(())
    };
    create().with_context(|| format!("cannot write {}", path.display()))
}

/// Writes the entries below `root` with their modes and mtimes.
fn stage(root: &Path, entries: &[&Entry], epoch: u64) -> Result<()> {
    for e in entries {
        let path = root.join(&e.path);
        match &e.content {
            Content::Dir => fs::create_dir_all(&path),
            Content::File(data) => fs::write(&path, data),
        }
        .with_context(|| format!("cannot create {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(e.mode))?;
    }
    // Last, since creating a file changes its directory's mtime.
    for e in entries {
        set_mtime(&root.join(&e.path), epoch)?;
    }
    Ok(())
}

fn set_mtime(path: &Path, epoch: u64) -> Result<()> {
    let t = UNIX_EPOCH + Duration::from_secs(epoch);
    // A directory opens read-only on Linux, and futimens works on that descriptor.
    fs::File::open(path)
        .and_then(|f| f.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t)))
        .with_context(|| format!("cannot set the mtime of {}", path.display()))
}

const POSTINST: &str = r#"#!/bin/sh
# Enables and starts monitor.service on install, and restarts it on upgrade if it was running
# (debhelper's systemd snippets). Starting at once is deliberate: the default configuration only
# observes, with alerts in the journal and nothing sent off the host, and a security agent that
# is installed but not running is the failure nobody notices. Enabling without starting would
# not buy a review either: the next boot starts it with the same configuration. To hold it back,
# `systemctl mask monitor.service` before installing, or use a policy-rc.d (image builds).
set -e

if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ] || [ "$1" = "abort-deconfigure" ] || [ "$1" = "abort-remove" ]; then
	if command -v deb-systemd-helper >/dev/null; then
		# Removes only the mask deb-systemd-helper set when the package was removed.
		deb-systemd-helper unmask monitor.service >/dev/null || true
		# was-enabled is true on a first install; on upgrade it keeps an admin's disable.
		if deb-systemd-helper --quiet was-enabled monitor.service; then
			deb-systemd-helper enable monitor.service >/dev/null || true
		else
			deb-systemd-helper update-state monitor.service >/dev/null || true
		fi
	fi
	# Not in a chroot or image build, nor when dpkg installs into another root.
	if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
		if [ -n "$2" ]; then
			action=try-restart
		else
			action=start
		fi
		# A kernel without BTF or tracefs must not fail the install; the reason is in the journal.
		deb-systemd-invoke $action monitor.service >/dev/null ||
			echo "monitor: monitor.service did not $action: see systemctl status monitor.service" >&2
	fi
fi

exit 0
"#;

const PRERM: &str = r#"#!/bin/sh
set -e

# On upgrade the old daemon keeps running until postinst restarts it, so no events are missed
# while dpkg unpacks.
if [ -z "${DPKG_ROOT:-}" ] && [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	deb-systemd-invoke stop monitor.service >/dev/null || true
fi

exit 0
"#;

const POSTRM: &str = r#"#!/bin/sh
set -e

if [ "$1" = remove ] && [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi

# Removed but not purged: the unit is gone, the enablement is remembered for a reinstall.
if [ "$1" = remove ] && command -v deb-systemd-helper >/dev/null; then
	deb-systemd-helper mask monitor.service >/dev/null || true
fi

if [ "$1" = purge ]; then
	if command -v deb-systemd-helper >/dev/null; then
		deb-systemd-helper purge monitor.service >/dev/null || true
		deb-systemd-helper unmask monitor.service >/dev/null || true
	fi
	# systemd's StateDirectory: the sinks' spools (alerts never delivered) and the daemon's state.
	rm -rf "${DPKG_ROOT:-}/var/lib/monitor"
fi

exit 0
"#;

fn build_deb(
    deb: &Path,
    work: &Path,
    entries: &[&Entry],
    version: &str,
    arch: &str,
    epoch: u64,
) -> Result<()> {
    // dpkg-shlibdeps wants the package tree at debian/<package> next to a debian/control.
    let debian = work.join("debian");
    let root = debian.join(NAME);
    fs::create_dir_all(&root)?;
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755))?;
    stage(&root, entries, epoch)?;
    let depends = depends(work, &root.join(BINARY))?;

    let installed_kib: u64 = entries
        .iter()
        .map(|e| match &e.content {
            Content::Dir => 1,
            Content::File(data) => (data.len() as u64).div_ceil(1024),
        })
        .sum();
    let description: String = DESCRIPTION.lines().map(|l| format!(" {l}\n")).collect();
    let control = format!(
        "Package: {NAME}\n\
         Version: {version}\n\
         Architecture: {arch}\n\
         Maintainer: {}\n\
         Installed-Size: {installed_kib}\n\
         Depends: {depends}\n\
         Section: admin\n\
         Priority: optional\n\
         Description: {SYNOPSIS}\n{description}",
        maintainer()?
    );
    // dpkg records the conffiles' checksums itself, so md5sums leaves them out (as dh_md5sums).
    let mut files: Vec<&str> = entries
        .iter()
        .filter(|e| matches!(e.content, Content::File(_)) && e.path != CONFFILE)
        .map(|e| e.path.as_str())
        .collect();
    files.sort_unstable();
    let md5sums = capture(Command::new("md5sum").arg("--").args(&files).current_dir(&root))?;

    let control_dir = root.join("DEBIAN");
    fs::create_dir(&control_dir)?;
    let control_files: [(&str, u32, &str); 6] = [
        ("control", 0o644, &control),
        ("conffiles", 0o644, &format!("/{CONFFILE}\n")),
        ("md5sums", 0o644, &md5sums),
        ("postinst", 0o755, POSTINST),
        ("prerm", 0o755, PRERM),
        ("postrm", 0o755, POSTRM),
    ];
    for (name, mode, text) in control_files {
        let path = control_dir.join(name);
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        set_mtime(&path, epoch)?;
    }
    fs::set_permissions(&control_dir, fs::Permissions::from_mode(0o755))?;
    set_mtime(&control_dir, epoch)?;
    set_mtime(&root, epoch)?;

    run_checked(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&root)
            .arg(deb)
            // dpkg-deb dates the ar members by it.
            .env("SOURCE_DATE_EPOCH", epoch.to_string()),
    )
    .context("building the .deb (dpkg-deb is in Debian's dpkg package)")
}

/// The binary's shared-library dependencies: dpkg-shlibdeps when dpkg-dev is installed (it knows
/// each library's package and the version its symbols need), else libc6 at the newest GLIBC_
/// symbol version the binary imports, plus libgcc-s1 when it links libgcc_s.
fn depends(work: &Path, binary: &Path) -> Result<String> {
    fs::write(
        work.join("debian/control"),
        format!("Source: {NAME}\n\nPackage: {NAME}\nArchitecture: any\n"),
    )?;
    let rel = binary.strip_prefix(work).expect("the binary is staged below the work directory");
    match capture(Command::new("dpkg-shlibdeps").arg("-O").arg(rel).current_dir(work)) {
        Ok(out) => {
            if let Some(deps) = out.lines().find_map(|l| l.strip_prefix("shlibs:Depends=")) {
                return Ok(deps.trim().to_owned());
            }
            eprintln!(
                "xtask: dpkg-shlibdeps printed no shlibs:Depends ({out:?}); reading the binary instead"
            );
        }
        Err(e) => eprintln!("xtask: {e:#}; reading the binary's symbol versions instead"),
    }
    let symbols = capture(Command::new("objdump").arg("-T").arg(binary)).context(
        "neither dpkg-shlibdeps (dpkg-dev) nor objdump (binutils) could tell the binary's dependencies",
    )?;
    let newest = symbols
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(|v| v.split('.').map(str::parse::<u32>).collect::<Result<Vec<_>, _>>().ok())
        .max()
        .context("the binary imports no versioned glibc symbol: is it static?")?;
    let newest: Vec<String> = newest.iter().map(u32::to_string).collect();
    let mut deps = format!("libc6 (>= {})", newest.join("."));
    let headers = capture(Command::new("objdump").arg("-p").arg(binary))?;
    if headers.lines().any(|l| l.contains("NEEDED") && l.contains("libgcc_s.so.1")) {
        deps.push_str(", libgcc-s1");
    }
    Ok(deps)
}

/// A fresh directory for a throwaway root.
fn fresh(path: &Path) -> Result<PathBuf> {
    if path.exists() {
        fs::remove_dir_all(path).with_context(|| format!("cannot clear {}", path.display()))?;
    }
    fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    Ok(path.to_owned())
}

/// Checks that `path` below `root` is the entry as packed: kind, mode, content, and (as root,
/// when the owner could be set) root ownership.
fn check_installed(root: &Path, e: &Entry, what: &str) -> Result<()> {
    let path = root.join(&e.path);
    let meta = fs::metadata(&path).with_context(|| format!("{what}: {} is missing", e.path))?;
    let mode = meta.permissions().mode() & 0o7777;
    ensure!(mode == e.mode, "{what}: {} has mode {mode:o}, expected {:o}", e.path, e.mode);
    match &e.content {
        Content::Dir => ensure!(meta.is_dir(), "{what}: {} is not a directory", e.path),
        Content::File(data) => {
            ensure!(meta.is_file(), "{what}: {} is not a regular file", e.path);
            ensure!(&fs::read(&path)? == data, "{what}: {} differs from what was packed", e.path);
        }
    }
    if crate::is_root() {
        ensure!(meta.uid() == 0 && meta.gid() == 0, "{what}: {} is not owned by root:root", e.path);
    }
    Ok(())
}

/// Reads the tarball back (names, order, modes, owners, mtimes, contents), then extracts it with
/// the command deploy/README.md gives into a root whose /lib is a symlink to usr/lib, as on
/// merged-/usr systems: that command must keep the symlink.
fn check_tarball(tarball: &Path, top: &str, entries: &[&Entry], epoch: u64, work: &Path) -> Result<()> {
    let what = format!("tarball {}", tarball.display());
    let file = fs::File::open(tarball)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut expected =
        std::iter::once(top.to_owned()).chain(entries.iter().map(|e| format!("{top}/{}", e.path)));
    let modes: Vec<u32> = std::iter::once(0o755).chain(entries.iter().map(|e| e.mode)).collect();
    for (i, member) in archive.entries()?.enumerate() {
        let mut member = member?;
        let h = member.header();
        let name = member.path()?.to_string_lossy().trim_end_matches('/').to_owned();
        let want = expected.next().with_context(|| format!("{what}: unexpected member {name}"))?;
        ensure!(name == want, "{what}: member {i} is {name}, expected {want}");
        ensure!(h.mode()? == modes[i], "{what}: {name} has mode {:o}, expected {:o}", h.mode()?, modes[i]);
        ensure!(
            h.uid()? == 0 && h.gid()? == 0 && h.username()? == Some("root") && h.groupname()? == Some("root"),
            "{what}: {name} is not owned by root:root"
        );
        ensure!(h.mtime()? == epoch, "{what}: {name} has mtime {}, expected {epoch}", h.mtime()?);
        if i > 0
            && let Content::File(data) = &entries[i - 1].content
        {
            let mut packed = Vec::new();
            member.read_to_end(&mut packed)?;
            ensure!(&packed == data, "{what}: {name} differs from its source");
        }
    }
    if let Some(missing) = expected.next() {
        bail!("{what}: {missing} is missing");
    }

    let root = fresh(&work.join("tar-root"))?;
    fs::create_dir_all(root.join("usr/lib"))?;
    fs::set_permissions(root.join("usr/lib"), fs::Permissions::from_mode(0o755))?;
    std::os::unix::fs::symlink("usr/lib", root.join("lib"))?;
    run_checked(
        Command::new("tar")
            .arg("-xzf")
            .arg(tarball)
            .arg("-C")
            .arg(&root)
            .args(["--strip-components=1", "--keep-directory-symlink", "--no-overwrite-dir"])
            // Root keeps the packed modes by default; anyone else needs asking.
            .arg("--same-permissions"),
    )
    .with_context(|| format!("{what}: extracting it as deploy/README.md says failed"))?;
    ensure!(
        fs::symlink_metadata(root.join("lib"))?.file_type().is_symlink(),
        "{what}: extracting it replaced the /lib symlink with a directory"
    );
    for e in entries {
        // The root was prepared with usr and usr/lib, which --no-overwrite-dir leaves as they were.
        check_installed(&root, e, &what)?;
    }
    check_version(&root.join(BINARY))?;
    fs::remove_dir_all(&root)?;
    Ok(())
}

/// dpkg-deb's listing must show every entry with its mode and root:root; then dpkg installs the
/// package into a throwaway root, maintainer scripts included (DPKG_ROOT keeps them off the
/// host's systemd), the files and the enablement symlink are checked, the binary runs, and a
/// purge must take it all away again.
fn check_deb(deb: &Path, entries: &[&Entry], work: &Path) -> Result<()> {
    let what = format!("package {}", deb.display());
    let listing = capture(Command::new("dpkg-deb").arg("--contents").arg(deb))?;
    let mut listed: Vec<(String, String, String)> = listing
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 6).then(|| {
                let path = f[5].trim_start_matches("./").trim_end_matches('/').to_owned();
                (path, f[0].to_owned(), f[1].to_owned())
            })
        })
        .filter(|(path, ..)| !path.is_empty())
        .collect();
    listed.sort();
    let expected: Vec<(String, String, String)> =
        entries.iter().map(|e| (e.path.clone(), ls_mode(e), "root/root".to_owned())).collect();
    ensure!(
        listed == expected,
        "{what}: dpkg-deb --contents lists\n{listing}\nexpected (path, mode, owner)\n{expected:#?}"
    );

    let root = fresh(&work.join("deb-root"))?;
    let admin = root.join("var/lib/dpkg");
    fs::create_dir_all(admin.join("info"))?;
    fs::create_dir_all(admin.join("updates"))?;
    fs::write(admin.join("status"), "")?;
    let dpkg = |args: &[&str]| {
        let mut cmd = Command::new("dpkg");
        cmd.arg(format!("--root={}", root.display()))
            // The root has no shell to chroot into; the scripts see DPKG_ROOT and act on the root.
            .arg("--force-script-chrootless")
            // libc6 and libgcc-s1 are on the host, not in the empty root's database.
            .arg("--force-depends");
        if !crate::is_root() {
            cmd.arg("--force-not-root");
        }
        cmd.args(args);
        cmd
    };
    run_checked(dpkg(&["--install"]).arg(deb))
        .with_context(|| format!("{what}: dpkg --install into {} failed", root.display()))?;
    for e in entries {
        check_installed(&root, e, &what)?;
    }
    let wants = root.join("etc/systemd/system/multi-user.target.wants").join(UNIT);
    ensure!(
        fs::symlink_metadata(&wants).is_ok_and(|m| m.file_type().is_symlink()),
        "{what}: postinst did not enable {UNIT} ({} is missing)",
        wants.display()
    );
    let status = capture(&mut dpkg(&["--status", NAME]))?;
    ensure!(
        status.contains(&format!("/{CONFFILE} ")),
        "{what}: dpkg does not list /{CONFFILE} as a conffile:\n{status}"
    );
    check_version(&root.join(BINARY))?;

    run_checked(&mut dpkg(&["--purge", NAME])).with_context(|| format!("{what}: dpkg --purge failed"))?;
    for e in entries.iter().filter(|e| matches!(e.content, Content::File(_))) {
        ensure!(!root.join(&e.path).exists(), "{what}: {} is left after purge", e.path);
    }
    ensure!(fs::symlink_metadata(&wants).is_err(), "{what}: {} is left after purge", wants.display());
    fs::remove_dir_all(&root)?;
    Ok(())
}

/// The mode as `ls -l` and dpkg-deb --contents print it.
fn ls_mode(e: &Entry) -> String {
    let mut s = String::from(if matches!(e.content, Content::Dir) { "d" } else { "-" });
    for shift in [6, 3, 0] {
        let bits = (e.mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// Runs lintian when installed; its errors fail the build, its warnings are printed.
fn lintian(deb: &Path) -> Result<()> {
    if Command::new("lintian").arg("--version").output().is_err() {
        eprintln!("xtask: lintian is not installed, the .deb was not linted: `apt-get install lintian`");
        return Ok(());
    }
    let out = Command::new("lintian")
        .args(["--no-tag-display-limit", "--display-info"])
        .arg(deb)
        .output()
        .context("cannot run lintian")?;
    let report = String::from_utf8_lossy(&out.stdout);
    eprint!("{report}");
    let errors = report.lines().filter(|l| l.starts_with("E: ")).count();
    ensure!(errors == 0, "lintian found {errors} errors in {}", deb.display());
    eprintln!("xtask: lintian: no errors");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn changelog_dates_are_rfc_2822_in_utc() {
        assert_eq!(super::rfc2822(1_700_000_000).unwrap(), "Tue, 14 Nov 2023 22:13:20 +0000");
    }
}
