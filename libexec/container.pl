#!/usr/bin/perl
# Starts one devapollo container. Run by the daemon as host root, in a new session, with
# 0-2 on /dev/null and fd 3 a socket to the daemon.
#
# Why Perl: the set-up needs unshare, mount, sethostname and setns in a single-threaded
# process (setns into a mount namespace fails in multi-threaded Node), and perl-base is
# part of every Debian system, so no compiler and no extra package is needed. Only core
# syscall() is used, no modules beyond perl-base.
#
# Processes (why three): this process (the daemon's child) forks the MONITOR and exits at
# once, so the daemon holds no handle per container and the monitor is nobody's child but
# the host's init. The monitor marks itself a child subreaper, forks the SET-UP and execs
# a tiny log writer (monitor_script). The set-up builds the container and forks its INIT;
# once the init runs, the set-up exits and the init is reparented to the monitor, which
# reaps it. A running container is then two small processes: the init inside, the
# monitor outside.
#
# The monitor writes the init's stdout/stderr (a pipe) to DIR/logs/NAME.log, at most
# --max-log-size bytes, rotated once to NAME.log.1, so that a container cannot fill DIR.
# It stays in the host's namespaces as host root, forked before any unshare: the
# container can neither see it (it is not in the container's pid namespace, so no
# ptrace, kill or pidfd_open from inside) nor reach the log file's descriptor. It never
# blocks the container for long: output it cannot store (disk full) is dropped.
#
# Steps of the set-up (why this order matters):
#  1. As host root, in a private mount namespace: build the container's /dev on a tmpfs
#     and bind DIR/devapollo read-only at /dev/apollo. Done here, before the user
#     namespace exists, these mounts become locked once the user namespace copies them:
#     the container's root can neither unmount nor replace them, and never needs to
#     traverse DIR (mode 0700) to reach the socket.
#  2. Unshare user (unless privileged), mount, uts, ipc and pid namespaces; a helper that
#     stays in the host user namespace writes the uid/gid maps.
#  3. Fork the container's init (pid 1): mount /proc, /dev/pts, /dev/shm, set the
#     hostname, then wait until the daemon has registered it before running anything, so
#     that the first request from inside is already served.
#  4. Exec a tiny init that reaps orphans and runs the command, if any, and says whether
#     the command could be executed.
# Protocol on fd 3: we send "pid N" and then "ready" or "error MESSAGE"; the daemon
# answers "go" once it has registered the container; we then send "running" once the
# command runs (at once when there is none), or "error cannot run CMD: REASON".
#
# Descriptors: the daemon may have inherited descriptors it did not mark close-on-exec;
# every descriptor but 0-3 is closed before anything else, and the init closes all but
# 0-2 (and its report pipe) again, so a container gets exactly 0-2: /dev/null and the
# log pipe, nothing a host process had open.
use strict;
use warnings;

use Config;

my %syscalls = (
    'x86_64'  => { unshare => 272, mount => 165, sethostname => 170, setresuid => 117,
                   setresgid => 119, setgroups => 116, setsid => 112, close => 3, prctl => 157,
                   dup3 => 292 },
    'aarch64' => { unshare => 97, mount => 40, sethostname => 161, setresuid => 147,
                   setresgid => 149, setgroups => 159, setsid => 157, close => 57, prctl => 167,
                   dup3 => 24 },
);
my ($arch) = $Config{archname} =~ /^([^-]+)/;
my $sys = $syscalls{$arch} or die "container.pl: unsupported architecture $arch\n";

# 0. Before anything else: no descriptor but 0-2 and the control socket.
close_descriptors_above(3);

use constant {
    CLONE_NEWNS => 0x00020000, CLONE_NEWUTS => 0x04000000, CLONE_NEWIPC => 0x08000000,
    CLONE_NEWUSER => 0x10000000, CLONE_NEWPID => 0x20000000,
    MS_RDONLY => 1, MS_NOSUID => 2, MS_NODEV => 4, MS_NOEXEC => 8, MS_REMOUNT => 32,
    MS_BIND => 4096, MS_MOVE => 8192, MS_REC => 16384, MS_PRIVATE => 1 << 18,
    PR_SET_CHILD_SUBREAPER => 36,
};

my (%opt, @cmd);
while (@ARGV) {
    my $arg = shift @ARGV;
    if ($arg eq '--') { @cmd = @ARGV; last }
    elsif ($arg =~ /^--(name|stage|devapollo|uid-map|gid-map|log|max-log-size)$/) { $opt{$1} = shift @ARGV }
    elsif ($arg eq '--lxd-compat') { $opt{'lxd-compat'} = 1 }
    else { die "container.pl: unknown argument $arg\n" }
}
defined $opt{$_} or die "container.pl: --$_ is required\n" for qw(name stage log max-log-size);
$opt{'max-log-size'} =~ /^[1-9][0-9]*$/ or die "container.pl: --max-log-size must be a positive integer\n";

open(my $ctl, '+<&=', 3) or die "container.pl: fd 3 is not open: $!\n";
select((select($ctl), $| = 1)[0]);

sub fail { print $ctl "error $_[0]\n"; exit 1 }

# mount(2). Arguments are copied first: syscall() needs writable strings, and 0 is NULL.
sub sys_mount {
    my ($source, $target, $type, $flags, $data) = @_;
    $source //= 0;
    $type //= 0;
    $data //= 0;
    return syscall($sys->{mount}, $source, $target, $type, 0 + $flags, $data) == 0;
}

sub mnt { sys_mount(@_) or fail("mount $_[1]: $!") }

# Closes every descriptor above $keep, from the list in /proc/self/fd (the host's /proc
# here; the container's own in the init, where nothing else has run yet).
sub close_descriptors_above {
    my $keep = shift;
    opendir(my $dir, '/proc/self/fd') or die "cannot list /proc/self/fd: $!\n";
    my @fds = grep { /^[0-9]+$/ && $_ > $keep } readdir $dir;
    closedir $dir;
    syscall($sys->{close}, 0 + $_) for @fds;
}

# The monitor: forked before any namespace is made, so it stays in the host's. This
# process exits at once; the monitor then forks the set-up, which carries on below.
pipe(my $log_r, my $log_w) or fail("pipe: $!");
my $monitor = fork() // fail("fork: $!");
exit 0 if $monitor;
syscall($sys->{prctl}, PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 or fail("prctl(PR_SET_CHILD_SUBREAPER): $!");
my $setup = fork() // fail("fork: $!");
if ($setup) {
    close $ctl;
    close $log_w;
    open(STDIN, '<&', $log_r) or exit 1;
    close $log_r;
    { exec { $^X } 'devapollo-monitor', '-e', monitor_script(), '--', $opt{name}, $opt{log}, $opt{'max-log-size'}, $setup }
    exit 1;
}
close $log_r;
open(STDOUT, '>&', $log_w) or fail("dup: $!");
open(STDERR, '>&', $log_w) or fail("dup: $!");
close $log_w;

# 1. Host side: a private mount namespace and the container's /dev.
syscall($sys->{unshare}, CLONE_NEWNS) == 0 or fail("unshare(mount): $!");
mnt(undef, '/', undef, MS_REC | MS_PRIVATE);
my $stage = $opt{stage};
my $unprivileged = defined $opt{'uid-map'};
my ($uid_base, $uid_count) = split /:/, ($opt{'uid-map'} // '0:0');
my ($gid_base, $gid_count) = split /:/, ($opt{'gid-map'} // $opt{'uid-map'} // '0:0');
# The container's root owns its /dev, as on LXD; the locked mounts in it stay out of reach.
mnt('tmpfs', $stage, 'tmpfs', MS_NOSUID, "mode=755,size=65536k,uid=$uid_base,gid=$gid_base");
for my $node (qw(null zero full random urandom tty)) {
    open(my $fh, '>', "$stage/$node") or fail("create $stage/$node: $!");
    close $fh;
    mnt("/dev/$node", "$stage/$node", undef, MS_BIND);
}
mkdir "$stage/$_", 0755 for qw(pts shm);
symlink 'pts/ptmx', "$stage/ptmx";
symlink '/proc/self/fd', "$stage/fd";
symlink "/proc/self/fd/$_->[0]", "$stage/$_->[1]" for [0, 'stdin'], [1, 'stdout'], [2, 'stderr'];
my @guest_mounts = ('apollo');
push @guest_mounts, 'lxd' if $opt{'lxd-compat'};
if (defined $opt{devapollo}) {
    for my $dir (@guest_mounts) {
        mkdir "$stage/$dir", 0755 or fail("mkdir $stage/$dir: $!");
        mnt($opt{devapollo}, "$stage/$dir", undef, MS_BIND);
        mnt(undef, "$stage/$dir", undef, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
    }
}
mnt($stage, '/dev', undef, MS_MOVE);

# 2. The container's namespaces. The map helper stays behind in the host user namespace.
my $flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID;
if ($unprivileged) {
    pipe(my $go_r, my $go_w) or fail("pipe: $!");
    my $parent = $$;
    my $helper = fork() // fail("fork: $!");
    if ($helper == 0) {
        close $go_w;
        my $go = <$go_r>;
        exit 1 unless defined $go;
        for (["uid_map", "0 $uid_base $uid_count\n"], ["gid_map", "0 $gid_base $gid_count\n"]) {
            open(my $fh, '>', "/proc/$parent/$_->[0]") or exit 2;
            print $fh $_->[1] or exit 2;
            close $fh or exit 2;
        }
        exit 0;
    }
    close $go_r;
    syscall($sys->{unshare}, $flags | CLONE_NEWUSER) == 0 or fail("unshare(user): $!");
    print $go_w "go\n";
    close $go_w;
    waitpid($helper, 0);
    $? == 0 or fail("writing the uid/gid maps failed (is the range in /etc/subuid mapped?)");
    syscall($sys->{setresgid}, 0, 0, 0) == 0 or fail("setresgid: $!");
    my $groups = pack('L', 0);
    syscall($sys->{setgroups}, 1, $groups) == 0 or fail("setgroups: $!");
    syscall($sys->{setresuid}, 0, 0, 0) == 0 or fail("setresuid: $!");
} else {
    syscall($sys->{unshare}, $flags) == 0 or fail("unshare: $!");
}

# 3. The init, pid 1 of the new pid namespace.
pipe(my $up_r, my $up_w) or fail("pipe: $!");
pipe(my $down_r, my $down_w) or fail("pipe: $!");
my $init = fork() // fail("fork: $!");
if ($init == 0) {
    close $ctl;
    close $up_r;
    close $down_w;
    select((select($up_w), $| = 1)[0]);
    my $setup = sub {
        return if sys_mount(@_);
        print $up_w "error mount $_[1]: $!\n";
        exit 1;
    };
    $setup->('proc', '/proc', 'proc', MS_NOSUID | MS_NODEV | MS_NOEXEC);
    sys_mount('devpts', '/dev/pts', 'devpts', MS_NOSUID | MS_NOEXEC, 'newinstance,ptmxmode=0666,mode=0620,gid=5')
        or $setup->('devpts', '/dev/pts', 'devpts', MS_NOSUID | MS_NOEXEC, 'newinstance,ptmxmode=0666');
    $setup->('shm', '/dev/shm', 'tmpfs', MS_NOSUID | MS_NODEV, 'mode=1777,size=65536k');
    my $name = "$opt{name}";
    if (syscall($sys->{sethostname}, $name, length $name) != 0) {
        print $up_w "error sethostname: $!\n";
        exit 1;
    }
    syscall($sys->{setsid}) >= 0 or print STDERR "devapollo: setsid: $!\n";
    chdir '/';
    print $up_w "ready\n";
    my $go = <$down_r>;
    exit 1 unless defined $go && $go eq "go\n";
    close $down_r;
    # The init reports on fd 3 whether its command could be executed.
    syscall($sys->{dup3}, fileno($up_w), 3, 0) == 3 or exit 1;
    close $up_w;
    { exec { $^X } 'init', '-e', init_script(), '--', @cmd }
    print STDERR "devapollo: cannot start the init: $!\n";
    exit 127;
}
close $up_w;
close $down_r;
print $ctl "pid $init\n";
my $state = <$up_r>;
$state = "error the container's init exited during set-up\n" unless defined $state;
print $ctl $state;
if ($state ne "ready\n") {
    kill 'KILL', $init;
    waitpid($init, 0);
    exit 1;
}
my $answer = <$ctl>;
if (!defined $answer || $answer ne "go\n") {
    # The daemon went away or refused: never leave a container it does not know about.
    kill 'KILL', $init;
    waitpid($init, 0);
    exit 1;
}
print $down_w "go\n";
close $down_w;
# Without a command there is nothing to wait for: the daemon is not kept waiting while
# the init's perl starts.
my $outcome = @cmd ? <$up_r> : "running\n";
$outcome = "error the container's init exited before it ran its command\n" unless defined $outcome;
print $ctl $outcome;
# On error the daemon unwinds the launch; the init is killed here too, and the monitor,
# to which it is reparented when this process exits, reaps it.
kill 'KILL', $init if $outcome ne "running\n";
exit($outcome eq "running\n" ? 0 : 1);

# pid 1 of every container: reaps whatever is orphaned into it, runs the command if one
# was given (the container stops when it exits, with its status), forwards signals to it,
# and otherwise idles until SIGTERM. Kept tiny: it lives as long as the container.
# Fd 3 is the set-up's report pipe: "running", or why the command could not be run (with
# a command only; without one the set-up does not wait).
sub init_script {
    my $script = <<'INIT';
opendir(my $fds, '/proc/self/fd');
my @open = grep { /^[0-9]+$/ && $_ > 3 } readdir $fds;
closedir $fds;
syscall(SYS_close, 0 + $_) for @open;
open(my $report, '>&=', 3) or exit 1;
select((select($report), $| = 1)[0]);
my ($child, $stopping) = (0, 0);
pipe(my $wake_r, my $wake_w);
select((select($wake_w), $| = 1)[0]);
$SIG{CHLD} = sub { syswrite $wake_w, 'c' };
for my $sig (qw(TERM INT HUP QUIT USR1 USR2)) {
    $SIG{$sig} = sub {
        if ($child) { kill $sig, $child; return }
        $stopping = 1;
        kill 'TERM', -1;
        syswrite $wake_w, 's';
    };
}
if (@ARGV) {
    # Both ends close on exec: the command's exec closes the write end, an exec that
    # fails writes why.
    pipe(my $failed_r, my $failed_w);
    $child = fork() // die "init: fork: $!\n";
    if ($child == 0) {
        $SIG{$_} = 'DEFAULT' for qw(CHLD TERM INT HUP QUIT USR1 USR2);
        close $wake_r; close $wake_w; close $report; close $failed_r;
        exec { $ARGV[0] } @ARGV;
        # As shells do: 127 when there is no such command, 126 when it cannot run.
        my $missing = $! == 2;
        my $why = "cannot run $ARGV[0]: " . ($missing && $ARGV[0] !~ m{/} ? 'command not found' : "$!");
        print STDERR "init: $why\n";
        syswrite $failed_w, $why;
        exit($missing ? 127 : 126);
    }
    close $failed_w;
    my $why = '';
    while (1) {
        my $n = sysread($failed_r, $why, 4096, length $why);
        last unless $n || (!defined $n && $! == 4);
    }
    close $failed_r;
    print $report length($why) ? "error $why\n" : "running\n";
}
close $report;
while (1) {
    my $pid = waitpid(-1, 0);
    if ($pid > 0) {
        next unless $pid == $child;
        my $code = $? & 127 ? 128 + ($? & 127) : $? >> 8;
        print "init: the command exited with status $code\n";
        kill 'TERM', -1;
        exit $code;
    }
    exit 0 if $stopping;
    sysread $wake_r, my $buffer, 64;
}
INIT
    $script =~ s/SYS_close/$sys->{close}/;
    return $script;
}

# The monitor, outside the container: copies the init's output (its stdin, a pipe) to
# the log, at most CAP bytes a file. When the next chunk would not fit, NAME.log becomes
# NAME.log.1 and a new NAME.log starts, so the newest output is always kept. Errors (a
# full disk) drop output rather than block the container.
#
# It ends with its container, not with the pipe: once the set-up is reaped, the monitor's
# only child is the init (reparented to it as a child subreaper; the init reaps everything
# inside). When it has no child left, the container is gone: it drains what is readable at
# once (at most CAP bytes), and exits. Waiting for the end of the pipe instead would let a
# process of another container that took the write end (pidfd_getfd on the init) keep the
# monitor alive for ever, as host root, writing into the log of whatever container has the
# name next. For the same reason it writes and rotates only while NAME.log is still the
# file it opened (same device and inode): a log removed with its container, or one a newer
# monitor made, is never written to nor renamed.
sub monitor_script {
    return <<'MONITOR';
use strict;
use warnings;
use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK O_WRONLY O_APPEND O_CREAT O_EXCL O_NOFOLLOW);
use POSIX qw(WNOHANG EAGAIN EINTR);
my ($name, $log, $cap, $setup) = @ARGV;
$0 = "devapollo-monitor $name";
umask 077;
waitpid($setup, 0);
my ($fh, $size, $gone, $id) = (undef, 0, 0, '');
sub identity { my @st = @_; return @st ? "$st[0]:$st[1]" : '' }
# The daemon makes NAME.log before the launch; the monitor never makes one but the next
# after a rotation, and that one only if nobody made it meanwhile (O_EXCL).
sub reopen {
    my ($create) = @_;
    my $flags = O_WRONLY | O_APPEND | O_NOFOLLOW | ($create ? O_CREAT | O_EXCL : 0);
    if (!sysopen($fh, $log, $flags, 0600)) { undef $fh; $gone = 1 if $! == 2 || $! == 17; return undef }
    my @st = stat $fh;
    ($id, $size) = (identity(@st), $st[7] || 0);
    return 1;
}
sub ours { return $id ne '' && identity(stat $log) eq $id }
sub store {
    my ($chunk) = @_;
    return if $gone;
    return unless $fh || reopen();
    if (!ours()) { $gone = 1; close $fh; undef $fh; return }
    $chunk = substr($chunk, -$cap) if length($chunk) > $cap;
    if ($size + length($chunk) > $cap) {
        close $fh;
        undef $fh;
        if (rename($log, "$log.1")) {
            return unless reopen(1);
        } elsif ($! == 2) {
            $gone = 1;
            return;
        } else {
            return unless reopen();
            truncate($fh, 0);
            $size = 0;
        }
    }
    my $written = syswrite($fh, $chunk);
    $size += $written if defined $written;
}
reopen();
# SIGCHLD wakes the loop through a pipe of its own: no polling, and no exit missed
# between the check and the wait.
pipe(my $wake_r, my $wake_w) or die "pipe: $!";
for my $end ($wake_r, $wake_w) {
    my $flags = fcntl($end, F_GETFL, 0);
    fcntl($end, F_SETFL, $flags | O_NONBLOCK);
}
$SIG{CHLD} = sub { syswrite $wake_w, 'c' };
my ($chunk, $eof) = ('', 0);
while (1) {
    last if waitpid(-1, WNOHANG) < 0;
    my $rin = '';
    vec($rin, fileno(STDIN), 1) = 1;
    vec($rin, fileno($wake_r), 1) = 1;
    my $ready = select(my $rout = $rin, undef, undef, undef);
    next if $ready <= 0;
    if (vec($rout, fileno($wake_r), 1)) { 1 while sysread($wake_r, my $drop, 64); }
    next unless vec($rout, fileno(STDIN), 1);
    my $n = sysread(STDIN, $chunk, 65536);
    if (!defined $n) { next if $! == EINTR; $eof = 1; last }
    if ($n == 0) { $eof = 1; last }
    store($chunk);
}
if ($eof) {
    # Every writer has closed the pipe: the init may still run; reap it.
    1 while waitpid(-1, 0) > 0;
} else {
    # The container has ended: what its processes wrote is in the pipe; what a process
    # elsewhere writes from now on is not its output.
    my $flags = fcntl(STDIN, F_GETFL, 0);
    fcntl(STDIN, F_SETFL, $flags | O_NONBLOCK) if defined $flags;
    my $left = $cap;
    while ($left > 0) {
        my $n = sysread(STDIN, $chunk, $left < 65536 ? $left : 65536);
        last unless $n;
        store($chunk);
        $left -= $n;
    }
}
MONITOR
}
