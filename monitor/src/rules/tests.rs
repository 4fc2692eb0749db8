//! The engine end to end on events built in code: every operator, transformers, lists, macros,
//! overrides, exceptions, event-type indexing and the error messages users see.

use std::sync::Arc;

use super::loader::Definitions;
use super::ruleset::{Loaded, Ruleset};
use super::source::{Severity, SourceFile};
use monitor_common::{EventType, FdType, L4Proto};

use crate::event::{Detail, Event, FieldContext, NetInfo, OpenInfo};
use crate::process::{Process, StdioInfo};

fn process(name: &str, exe: &str, args: &[&str]) -> Arc<Process> {
    Arc::new(Process {
        pid: 100,
        ppid: 1,
        comm: name.into(),
        exe_path: exe.into(),
        argv: std::iter::once(name).chain(args.iter().copied()).map(String::from).collect(),
        cwd: Some("/root".into()),
        vpid: 100,
        stdio: [
            StdioInfo { fd_type: Some(FdType::Pipe), name: None },
            StdioInfo { fd_type: Some(FdType::Ipv4), name: Some("10.0.0.1:5000->10.0.0.2:4444".into()) },
            StdioInfo::default(),
        ],
        ..Default::default()
    })
}

fn event(evt_type: &str, detail: Detail) -> Event {
    let evt_type = EventType::from_name(evt_type).expect("an event type");
    let parent = Arc::new(Process {
        pid: 1,
        comm: "nginx".into(),
        exe_path: "/usr/sbin/nginx".into(),
        ..Default::default()
    });
    let grandparent = Arc::new(Process { pid: 0, comm: "systemd".into(), ..Default::default() });
    Event {
        evt_type,
        via: monitor_common::Via::Syscall,
        call: monitor_common::Call::Same,
        result_unknown: false,
        num: 7,
        time_ns: 1_700_000_000_000_000_000,
        cpu: 0,
        pid: 100,
        tid: 100,
        uid: 0,
        gid: 0,
        res: 3,
        cgroup_id: 1,
        cgroup_path: Some("/system.slice/x.service".into()),
        container: None,
        process: Some(process("bash", "/usr/bin/bash", &["-c", "cat /etc/Shadow"])),
        ancestors: vec![parent, grandparent],
        detail,
    }
}

fn open(path: &str, flags: u32) -> Event {
    event("openat", Detail::Open(OpenInfo { path: path.into(), resolved: true, flags, ..Default::default() }))
}

fn connect(ip: &str, port: u16) -> Event {
    let mut ev = event(
        "connect",
        Detail::Net(NetInfo {
            fd_type: if ip.contains(':') { FdType::Ipv6 } else { FdType::Ipv4 },
            l4proto: Some(L4Proto::Tcp),
            fd: 3,
            sip: Some(ip.parse().unwrap()),
            sport: port,
            cip: Some("10.1.1.1".parse().unwrap()),
            cport: 40000,
            ..Default::default()
        }),
    );
    ev.res = 0;
    ev
}

fn exec() -> Event {
    event("execve", Detail::Exec { filename: "/bin/bash".into() })
}

fn load(yaml: &str) -> Loaded {
    let mut defs = Definitions::default();
    defs.load_source(SourceFile::new("test.yaml", yaml));
    Ruleset::from_definitions(defs)
}

fn errors(l: &Loaded) -> Vec<String> {
    l.diagnostics.iter().filter(|d| d.severity == Severity::Error).map(|d| d.headline()).collect()
}

/// Whether a one-rule file with `condition` matches `ev`.
fn matches(condition: &str, ev: &Event) -> bool {
    let yaml = format!(
        "- list: shells\n  items: [bash, zsh]\n- list: more\n  items: [shells, sh]\n\
         - rule: r\n  desc: d\n  condition: {}\n  output: o\n  priority: WARNING\n",
        serde_json::to_string(condition).unwrap()
    );
    let l = load(&yaml);
    assert!(errors(&l).is_empty(), "{condition}: {:?}", errors(&l));
    assert!(l.ruleset.skipped.is_empty(), "{condition}: skipped: {}", l.ruleset.skipped[0].reason);
    let mut out = Vec::new();
    l.ruleset.matching(ev, &FieldContext::default(), &mut out);
    !out.is_empty()
}

#[test]
fn comparison_operators() {
    let ev = open("/etc/shadow", 0);
    for (cond, want) in [
        ("fd.name = /etc/shadow", true),
        ("fd.name == /etc/shadow", true),
        ("fd.name != /etc/shadow", false),
        ("fd.name != /etc/passwd", true),
        ("fd.num = 3", true),
        ("fd.num < 4 and fd.num <= 3 and fd.num > 2 and fd.num >= 3", true),
        ("fd.num > 3", false),
        ("fd.name < /f and fd.name > /a", true),
        ("evt.is_open_read = true and evt.is_open_write = false", true),
        ("proc.pname exists and proc.script exists", false),
        ("proc.pname exists", true),
        ("evt.dir = <", true),
        ("evt.num = 7", true),
    ] {
        assert_eq!(matches(cond, &ev), want, "{cond}");
    }
}

#[test]
fn string_operators() {
    let ev = open("/etc/shadow", 0);
    for (cond, want) in [
        ("fd.name contains shad", true),
        ("fd.name contains SHAD", false),
        ("fd.name icontains SHAD", true),
        ("fd.name startswith /etc/", true),
        ("fd.name endswith dow", true),
        ("fd.name glob '/etc/*'", true),
        ("fd.name glob '/e?c/sh[a-z]dow'", true),
        ("fd.name glob '/etc'", false),
        // Or'ed globs on one field are matched as one set.
        ("fd.name glob '/x/*' or fd.name glob '/etc/sh*' or proc.name = zsh", true),
        ("fd.name glob '/x/*' or fd.name glob '/y/*' or proc.name = zsh", false),
        ("fd.name glob '/x/*' or fd.name iglob '/ETC/SHADOW'", true),
        ("fd.name iglob '/ETC/*'", true),
        ("fd.name regex '/etc/s.*w'", true),
        // Falco's regex is a full match.
        ("fd.name regex 'shadow'", false),
        ("fd.name bcontains 736861", true),
        ("fd.name bstartswith 2f657463", true),
        ("fd.name bstartswith 2f657464", false),
        ("fd.name pmatch (/etc, /usr/bin)", true),
        ("fd.name pmatch (/et)", false),
        ("fd.name in (/etc/passwd, /etc/shadow)", true),
        ("fd.directory = /etc and fd.filename = shadow", true),
    ] {
        assert_eq!(matches(cond, &ev), want, "{cond}");
    }
}

#[test]
fn lists_macros_and_transformers() {
    let ev = exec();
    for (cond, want) in [
        ("proc.name in (shells)", true),
        ("proc.name in (more)", true),
        ("proc.name in ('shells')", false),
        ("proc.name in (sh, more)", true),
        ("proc.name intersects (zsh, bash)", true),
        ("toupper(proc.name) = BASH", true),
        ("tolower(proc.args) contains shadow", true),
        ("basename(proc.exepath) = bash", true),
        ("len(proc.name) = 4", true),
        ("len(proc.name) > 4", false),
        ("b64(proc.exepath) exists", false),
        ("b64(proc.name) exists", true),
        ("proc.aname[1] = nginx and proc.aname[2] = systemd", true),
        ("proc.aname = systemd", true),
        ("proc.aname[3] exists", false),
        ("proc.apid[1] = 1", true),
        ("proc.pname = nginx and proc.pexepath = /usr/sbin/nginx", true),
        ("proc.name != val(proc.pname)", true),
        ("proc.name = val(proc.pname)", false),
        ("proc.stdin.type = pipe and proc.stdout.type = ipv4", true),
        ("proc.cmdline = 'bash -c cat /etc/Shadow'", true),
        ("container.id = host and container.name exists", false),
        ("not (proc.name = bash or proc.name = zsh)", false),
        ("evt.type = execve and not evt.type = open", true),
    ] {
        assert_eq!(matches(cond, &ev), want, "{cond}");
    }
}

#[test]
fn network_fields_and_mapped_addresses() {
    let ev = connect("169.254.169.254", 80);
    for (cond, want) in [
        ("fd.sip = 169.254.169.254", true),
        ("fd.sip = '::ffff:169.254.169.254'", true),
        ("fd.snet = 169.254.0.0/16", true),
        ("fd.net = '10.0.0.0/8'", true),
        ("fd.snet in ('10.0.0.0/8', '169.254.169.254')", true),
        ("fd.sport in (80, 443) and fd.port = 40000", true),
        ("fd.l4proto = tcp and fd.typechar = 4 and fd.sockfamily = ip", true),
        ("fd.name = '10.1.1.1:40000->169.254.169.254:80'", true),
        ("fd.connected = true and evt.rawres >= 0 and evt.res = SUCCESS", true),
    ] {
        assert_eq!(matches(cond, &ev), want, "{cond}");
    }
}

#[test]
fn rules_are_indexed_by_event_type() {
    let l = load(
        "- rule: opens\n  desc: d\n  condition: evt.type in (open, openat) and fd.name startswith /etc\n  output: o\n  priority: INFO\n\
         - rule: anything\n  desc: d\n  condition: proc.name = bash\n  output: o\n  priority: INFO\n\
         - rule: not exec\n  desc: d\n  condition: evt.type != execve and fd.name exists\n  output: o\n  priority: INFO\n\
         - rule: setuid only\n  desc: d\n  condition: evt.type = setuid\n  output: o\n  priority: INFO\n\
         - rule: mount only\n  desc: d\n  condition: evt.type = mount\n  output: o\n  priority: INFO\n",
    );
    let r = &l.ruleset;
    assert_eq!(r.rules.iter().find(|x| x.name == "opens").unwrap().types.to_string(), "open,openat");
    assert_eq!(r.rules.iter().find(|x| x.name == "anything").unwrap().types.to_string(), "all");
    // fd.name is never set on exec, clone and exit events: those types fold away.
    assert_eq!(
        r.rules.iter().find(|x| x.name == "not exec").unwrap().types.to_string(),
        "open,openat,openat2,creat,connect,sendto,sendmsg,open_by_handle_at,pidfd_getfd,io_uring_setup,ptrace,\
         symlink,symlinkat,link,linkat,init_module,finit_module,socket,dup,dup2,dup3,setns,unshare,setuid,setgid,\
         setresuid,setresgid,chmod,fchmod,fchmodat,unlink,unlinkat,rmdir,rename,renameat,renameat2,mkdir,mkdirat,\
         bpf,userfaultfd,memfd_create,accept,accept4,listen,recvfrom,recvmsg"
    );
    assert_eq!(r.rules.iter().find(|x| x.name == "setuid only").unwrap().types.to_string(), "setuid");
    assert_eq!(r.skipped.len(), 1);
    assert!(r.skipped[0].reason.contains("(mount)"), "{}", r.skipped[0].reason);
    assert_eq!(r.rules_for_type(EventType::Execve), 1);
    assert_eq!(r.rules_for_type(EventType::Openat), 3);
}

#[test]
fn overrides_and_appends_apply_in_order() {
    let l = load(
        "- list: names\n  items: [bash]\n\
         - list: names\n  items: [zsh]\n  override:\n    items: append\n\
         - macro: m\n  condition: proc.name in (names)\n\
         - rule: r\n  desc: d\n  condition: m\n  output: o\n  priority: INFO\n  tags: [a]\n\
         - rule: r\n  condition: and fd.name = x\n  tags: [b]\n  priority: ERROR\n  override:\n    condition: append\n    tags: append\n    priority: replace\n\
         - rule: r\n  condition: or proc.name = zsh\n  append: true\n\
         - rule: disabled\n  desc: d\n  condition: proc.name = bash\n  output: o\n  priority: INFO\n\
         - rule: disabled\n  enabled: false\n",
    );
    assert!(errors(&l).is_empty(), "{:?}", errors(&l));
    let r = l.ruleset.rules.iter().find(|x| x.name == "r").unwrap();
    assert_eq!(r.tags, ["a", "b"]);
    assert_eq!(r.priority, crate::alert::Priority::Error);
    let off = l.ruleset.rules.iter().find(|x| x.name == "disabled").unwrap();
    assert!(!off.enabled);
    let mut out = Vec::new();
    // bash: m matches but `and fd.name = x` does not; `or proc.name = zsh` does not either.
    l.ruleset.matching(&exec(), &FieldContext::default(), &mut out);
    assert!(out.is_empty(), "disabled rule or unmatched condition fired: {out:?}");
}

#[test]
fn exceptions_compile_into_the_condition() {
    let yaml = "- rule: r\n  desc: d\n  condition: evt.type = openat\n  output: o\n  priority: INFO\n  exceptions:\n\
                \x20   - name: by_file\n      fields: [proc.name, fd.name]\n      comps: [=, startswith]\n      values:\n        - [bash, /etc/sh]\n\
                \x20   - name: by_dir\n      fields: fd.directory\n      values: [/var/log]\n";
    let l = load(yaml);
    assert!(errors(&l).is_empty(), "{:?}", errors(&l));
    let cx = FieldContext::default();
    let fire = |ev: &Event| {
        let mut out = Vec::new();
        l.ruleset.matching(ev, &cx, &mut out);
        !out.is_empty()
    };
    assert!(!fire(&open("/etc/shadow", 0)));
    assert!(!fire(&open("/var/log/syslog", 0)));
    assert!(fire(&open("/etc/passwd", 0)));
    // Appending values to an exception by name.
    let appended = format!(
        "{yaml}- rule: r\n  exceptions:\n    - name: by_dir\n      values: [/etc]\n  override:\n    exceptions: append\n"
    );
    let l = load(&appended);
    let mut out = Vec::new();
    l.ruleset.matching(&open("/etc/passwd", 0), &cx, &mut out);
    assert!(out.is_empty());
}

#[test]
fn unsupported_fields_skip_the_rule_with_a_located_reason() {
    let l = load(
        "- macro: caps\n  condition: thread.vmrss contains LD_PRELOAD\n\
         - rule: r\n  desc: d\n  condition: evt.type = execve and caps\n  output: o %thread.vmrss\n  priority: INFO\n\
         - rule: ok\n  desc: d\n  condition: evt.type = execve\n  output: o %thread.vmrss\n  priority: INFO\n",
    );
    assert!(errors(&l).is_empty());
    assert_eq!(l.ruleset.rules.len(), 1);
    let s = &l.ruleset.skipped[0];
    assert_eq!(s.name, "r");
    assert!(s.reason.contains("`thread.vmrss` (through macro `caps`)"), "{}", s.reason);
    assert_eq!(s.span.to_string(), "test.yaml:2:14");
}

#[test]
fn errors_are_located_and_say_what_was_expected() {
    for (yaml, want) in [
        (
            "- rule: r\n  desc: d\n  condition: evt.type = open and nosuchmacro\n  output: o\n  priority: INFO\n",
            "test.yaml:3:34: unknown macro `nosuchmacro`",
        ),
        (
            "- rule: r\n  desc: d\n  condition: proc.name = x and (fd.name = y\n  output: o\n  priority: INFO\n",
            "test.yaml:3:32: expected `)` to close the `(`, found the end",
        ),
        (
            "- rule: r\n  desc: d\n  condition: proc.name = x\n  output: o\n  priority: LOUD\n",
            "test.yaml:5:13: unknown priority `LOUD`",
        ),
        (
            "- rule: r\n  desc: d\n  condition: proc.pid = abc\n  output: o\n  priority: INFO\n",
            "test.yaml:3:25: expected a number for `proc.pid`, found `abc`",
        ),
        (
            "- rule: r\n  desc: d\n  output: o\n  priority: INFO\n",
            "test.yaml:1:3: rule `r` has no `condition`",
        ),
        ("- list: l\n  items: [a]\n  override:\n    items: append\n", "cannot append to list `l`"),
        (
            "- macro: a\n  condition: b\n- macro: b\n  condition: a\n- rule: r\n  desc: d\n  condition: a\n  output: o\n  priority: INFO\n",
            "refers to itself",
        ),
        (
            "- rule: r\n  desc: d\n  condition: fd.name regex '('\n  output: o\n  priority: INFO\n",
            "invalid regex",
        ),
        (
            "- rule: r\n  desc: d\n  condition: proc.aname[x] = a\n  output: o\n  priority: INFO\n",
            "ancestor number",
        ),
        ("- rulez: r\n", "test.yaml:1:3: unknown item `rulez`"),
        ("- rule: [a\n", "test.yaml:"),
    ] {
        let l = load(yaml);
        let errs = errors(&l);
        assert!(errs.iter().any(|e| e.contains(want)), "wanted `{want}` in {errs:?}");
    }
}

#[test]
fn output_renders_fields_and_nulls() {
    let l = load(
        "- rule: r\n  desc: d\n  condition: evt.type = openat\n  output: \"file=%fd.name by %proc.name[%proc.pid] caps=%fd.nameraw\"\n  priority: INFO\n",
    );
    let rule = &l.ruleset.rules[0];
    let cx = FieldContext::default();
    let ev = open("/etc/shadow", 0);
    assert_eq!(rule.output.render(&ev, &cx), "file=/etc/shadow by bash[100] caps=<NA>");
    let alert = crate::alert::Alert::new(rule.view(), &ev, &cx, 0);
    assert_eq!(alert.output_fields["fd.nameraw"], serde_json::Value::Null);
    assert_eq!(alert.output_fields["fd.name"], "/etc/shadow");
    assert_eq!(alert.output_fields["proc.pname"], "nginx");
    assert!(
        alert.output.ends_with(": Informational file=/etc/shadow by bash[100] caps=<NA>"),
        "{}",
        alert.output
    );
}

#[test]
fn hostile_strings_cannot_break_alert_lines() {
    let l = load(
        "- rule: r\n  desc: d\n  condition: evt.type = execve\n  output: cmd=%proc.cmdline\n  priority: INFO\n",
    );
    let mut ev = exec();
    ev.process = Some(process("ba\nsh", "/tmp/\u{1b}[31mx", &["\n{\"rule\":\"forged\"}", "\r\t\u{7f}"]));
    let alert = crate::alert::Alert::new(l.ruleset.rules[0].view(), &ev, &FieldContext::default(), 0);
    let mut json = Vec::new();
    alert.write_json(&mut json);
    let mut text = Vec::new();
    alert.write_text(&mut text);
    for line in [json, text] {
        let s = String::from_utf8(line).unwrap();
        assert!(!s.contains('\n') && !s.contains('\r') && !s.contains('\u{1b}'), "{s:?}");
    }
    assert!(alert.output.contains("cmd=ba\\nsh \\n{\"rule\":\"forged\"} \\r\\t\\x7f"), "{}", alert.output);
}

proptest::proptest! {
    #[test]
    fn parsing_arbitrary_conditions_never_panics(s in "\\PC{0,200}") {
        let _ = super::condition::parse(&s);
    }

    #[test]
    fn parsing_condition_like_text_never_panics(
        s in "(not |\\(|\\)|and |or |proc\\.name|fd\\.name\\[|= |in |\\(a, |'|\"|exists |x |, |\\]|val\\(|tolower\\()*"
    ) {
        let _ = super::condition::parse(&s);
    }

    #[test]
    fn loading_arbitrary_yaml_never_panics(s in "(- |rule: |macro: |list: |condition: |items: |\\[|\\]|\\{|\\}|\n  |a|'|:|override:|append|%)*") {
        let _ = load(&s);
    }
}

#[test]
fn alerter_applies_matching_policy_priority_floor_and_rate_limit() {
    use crate::alert::RateLimit;
    use crate::config::{OutputFormat, RuleMatching};
    use crate::pipeline::alerter::{Alerter, AlerterOptions};
    let yaml = "- rule: first\n  desc: d\n  condition: evt.type = openat\n  output: one %fd.name\n  priority: WARNING\n\
                - rule: second\n  desc: d\n  condition: fd.name = /etc/shadow\n  output: two\n  priority: DEBUG\n";
    let alerter = |matching, min_priority, rate_limit| {
        Alerter::new(
            load(yaml).ruleset,
            AlerterOptions {
                format: OutputFormat::Json,
                rate_limit,
                matching,
                min_priority,
                metadata_wait: std::time::Duration::ZERO,
            },
        )
    };
    let cx = FieldContext::default();
    let ev = open("/etc/shadow", 0);
    let rules_of = |out: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(out)
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["rule"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    let unlimited = RateLimit { per_second: 0.0, burst: 0.0 };
    let mut out = Vec::new();
    let mut a = alerter(RuleMatching::All, crate::alert::Priority::Debug, unlimited);
    assert_eq!(a.process(&ev, &cx, &mut out), 2);
    assert_eq!(rules_of(&out), ["first", "second"]);
    out.clear();
    let mut a = alerter(RuleMatching::First, crate::alert::Priority::Debug, unlimited);
    a.process(&ev, &cx, &mut out);
    assert_eq!(rules_of(&out), ["first"]);
    out.clear();
    let mut a = alerter(RuleMatching::All, crate::alert::Priority::Notice, unlimited);
    a.process(&ev, &cx, &mut out);
    assert_eq!(rules_of(&out), ["first"]);
    // A burst of 2, then nothing for a while: the held-back count rides on the next alert.
    let mut a = alerter(
        RuleMatching::First,
        crate::alert::Priority::Debug,
        RateLimit { per_second: 0.001, burst: 2.0 },
    );
    out.clear();
    for _ in 0..5 {
        a.process(&ev, &cx, &mut out);
    }
    assert_eq!(rules_of(&out).len(), 2);
    assert_eq!((a.stats.alerts, a.stats.suppressed), (2, 3));
    assert!(a.report().contains("3 suppressed"), "{}", a.report());
}

#[test]
fn falco_semantics_at_the_edges() {
    let mut orphan = exec();
    orphan.ancestors.clear();
    // A missing right-hand field or no ancestors at all: nothing to compare, the check fails.
    assert!(!matches("proc.name != val(proc.pname)", &orphan));
    assert!(!matches("proc.aname != bash", &orphan));
    assert!(!matches("proc.aname exists", &orphan));
    // With ancestors nginx and systemd, `!=` holds when some ancestor differs (Falco's rule).
    assert!(matches("proc.aname != nginx", &exec()));
    assert!(!matches("proc.aname in (zsh)", &exec()));
    // fork/vfork/clone3 are not our clone event: excluding them keeps clone events.
    let clone = event("clone", Detail::Fork);
    assert!(matches("evt.type in (clone, execve) and evt.type != fork", &clone));
    // fnmatch has no brace alternatives.
    assert!(!matches("proc.name glob '{bash,zsh}'", &exec()));
    assert!(matches("proc.name glob 'ba[s]h'", &exec()));
}

#[test]
fn yaml_scalars_keep_their_text_and_exceptions_expand_list_names() {
    let l = load(
        "- list: odd\n  items: [yes, 0x1F, 1_000, bash]\n\
         - list: exc_names\n  items: [bash]\n\
         - rule: r\n  desc: d\n  condition: evt.type = execve and proc.name in (odd)\n  output: o\n  priority: INFO\n\
         \x20 exceptions:\n    - {name: by_list, fields: proc.name, values: [exc_names]}\n\
         - rule: s\n  desc: d\n  condition: evt.type = execve and proc.name in (odd)\n  output: o\n  priority: INFO\n",
    );
    assert!(errors(&l).is_empty(), "{:?}", errors(&l));
    let cx = FieldContext::default();
    let names = |ev: &Event| {
        let mut out = Vec::new();
        l.ruleset.matching(ev, &cx, &mut out);
        out.iter().map(|&i| l.ruleset.rules[i].name.clone()).collect::<Vec<_>>()
    };
    // bash is excepted from r through the list, not from s.
    assert_eq!(names(&exec()), ["s"]);
    let mut yes = exec();
    yes.process = Some(process("yes", "/usr/bin/yes", &[]));
    assert_eq!(names(&yes), ["r", "s"], "`yes` must stay a name, not become `true`");
    let mut hex = exec();
    hex.process = Some(process("0x1F", "/tmp/0x1F", &[]));
    assert_eq!(names(&hex), ["r", "s"]);
}

#[test]
fn hostile_rules_are_errors_not_crashes() {
    // An empty comps list.
    let l = load(
        "- rule: r\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: INFO\n\
         \x20 exceptions:\n    - {name: e, fields: proc.name, comps: [], values: [bash]}\n",
    );
    assert!(errors(&l).is_empty(), "{:?}", errors(&l));
    // Macros each nesting within the parser's limit, nesting far beyond it once expanded.
    let mut yaml = String::new();
    let depth = 150;
    for i in 0..40 {
        let open = "proc.name = a and (".repeat(depth);
        let close = ")".repeat(depth);
        let next = if i == 39 { "proc.name = b".to_owned() } else { format!("m{}", i + 1) };
        yaml.push_str(&format!("- macro: m{i}\n  condition: \"{open}{next}{close}\"\n"));
    }
    yaml.push_str(
        "- rule: r\n  desc: d\n  condition: evt.type = execve and m0\n  output: o\n  priority: INFO\n",
    );
    let l = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || errors(&load(&yaml)))
        .unwrap()
        .join()
        .expect("deep macros must not crash the loader");
    assert!(l.iter().any(|e| e.contains("once its macros are expanded")), "{l:?}");
    // Legacy append changes only the condition and exceptions.
    let l = load(
        "- rule: r\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: INFO\n\
         - rule: r\n  condition: and proc.name = bash\n  priority: DEBUG\n  enabled: false\n  append: true\n\
         - rule: r\n  priority: DEBUG\n  append: true\n",
    );
    let r = &l.ruleset.rules[0];
    assert!(r.enabled && r.priority == crate::alert::Priority::Informational);
    assert!(errors(&l).iter().any(|e| e.contains("needs a `condition` or `exceptions`")), "{:?}", errors(&l));
    assert!(l.diagnostics.iter().any(|d| d.message.contains("`priority` is ignored")));
}
