#!/usr/bin/perl
# Runs a command inside a running devapollo container, for `devapollo exec`, as
# `lxc exec` does: a fresh environment, on a new pseudo-terminal allocated inside the
# container or on pipes, with this process relaying bytes between the two.
#
# Usage: exec.pl --pid PID --start-time TICKS --cwd DIR --mode pty|pipe
#   fd 0-2: the session's stdin, stdout and stderr (socket pairs the CLI made for it);
#   fd 3:   the session's control socket: first "NENV NARGS\n" and that many
#           NUL-terminated strings (KEY=VALUE, then the command and its arguments), then
#           "winsize ROWS COLS\n" lines (pty mode). End of file: the CLI is gone (or has
#           hung up): the command gets SIGHUP, and SIGKILL 3 s later if it is still there. We
#           answer "started\n" once the command runs (the CLI then makes its terminal raw).
# Exits with the command's status (128+N when it dies of signal N); 126/127 when it
# cannot be run; 1 with an "Error:" line when the container cannot be entered.
#
# Who can reach what (why the design is as it is):
#  - This process enters the container's user, ipc, uts, pid and mount namespaces but,
#    as setns(pid) affects only children, stays in the host's pid namespace. The
#    container's processes cannot name it: no ptrace, kill, pidfd_open or /proc/PID of
#    it from inside. It holds the session's descriptors (whose other ends are the CLI,
#    on the host), the pty master and the inner pipes.
#  - The command is forked into the container's pid namespace as the container's root:
#    the container's root can ptrace it, read its memory and environment and take its
#    descriptors (pidfd_getfd). So it gets only what the container may have: its
#    environment is built from the request alone (never this process's or the caller's),
#    and it holds exactly fds 0-2, each the slave of a pty from the container's own
#    devpts or a pipe whose other end is this process; never the caller's terminal, the
#    session sockets or anything else the host side had open (every other descriptor is
#    closed here at start and in the child before exec). It is a session leader: its
#    controlling terminal is its own pty or none, so /dev/tty and TIOCSTI reach only the
#    container's pty, never the caller's terminal.
#  - The CLI is spawned by nobody in the container and holds the caller's terminal; this
#    process runs in a session of its own, without a controlling terminal.
# Like nsenter, but safe against a recycled pid: the init is pinned with a pidfd first,
# its start time is checked against the one the daemon recorded, the namespace files are
# opened, and only then is the pidfd checked again: if the init still runs, the
# namespaces opened are its own. setns() needs a single-threaded process (Node is not),
# hence Perl from perl-base.
use strict;
use warnings;
use Config;

my %syscalls = (
    'x86_64'  => { setns => 308, setresuid => 117, setresgid => 119, setgroups => 116,
                   pidfd_open => 434, pidfd_send_signal => 424, close => 3, setsid => 112,
                   ioctl => 16, dup3 => 292, close_range => 436 },
    'aarch64' => { setns => 268, setresuid => 147, setresgid => 149, setgroups => 159,
                   pidfd_open => 434, pidfd_send_signal => 424, close => 57, setsid => 157,
                   ioctl => 29, dup3 => 24, close_range => 436 },
);
my ($arch) = $Config{archname} =~ /^([^-]+)/;
my $sys = $syscalls{$arch} or fail("unsupported architecture $arch");

# Before anything else: no descriptor but the session's (0-3), whatever the CLI inherited.
{
    opendir(my $dir, '/proc/self/fd') or fail("cannot list /proc/self/fd: $!");
    my @fds = grep { /^[0-9]+$/ && $_ > 3 } readdir $dir;
    closedir $dir;
    syscall($sys->{close}, 0 + $_) for @fds;
}

use constant {
    TIOCSCTTY => 0x540E, TIOCSWINSZ => 0x5414, TIOCGPTPEER => 0x5441,
    TIOCSPTLCK => 0x40045431, TIOCGPTN => 0x80045430,
    O_RDWR => 2, O_NOCTTY => 0400, O_NONBLOCK => 04000, F_GETFL => 3, F_SETFL => 4,
    CLOSE_RANGE_CLOEXEC => 4, EINTR => 4, EAGAIN => 11, EIO => 5,
    # Seconds between the hang-up (SIGHUP) and SIGKILL of the command's process group.
    HANGUP_GRACE_SECONDS => 3,
};

sub fail { print STDERR "Error: $_[0]\n"; exit 1 }

my %opt;
while (@ARGV) {
    my $arg = shift @ARGV;
    if ($arg =~ /^--(pid|start-time|cwd|mode)$/) { $opt{$1} = shift @ARGV }
    else { fail("exec.pl: unknown argument $arg") }
}
defined $opt{$_} or fail("exec.pl: --$_ is required") for qw(pid start-time cwd mode);
$opt{mode} =~ /^(pty|pipe)$/ or fail('exec.pl: --mode must be pty or pipe');
my $pty = $opt{mode} eq 'pty';
my $pid = 0 + $opt{pid};

open(my $ctl, '+<&=', 3) or fail("exec.pl: fd 3 is not open: $!");
my $control = '';
my ($env, $command) = read_request();

sub read_request {
    while ($control !~ /\n/) { read_more() or fail('exec.pl: the request ended early') }
    $control =~ s/^([0-9]+) ([0-9]+)\n// or fail('exec.pl: a bad request');
    my ($count_env, $count_args) = ($1, $2);
    $count_args > 0 or fail('exec.pl: no command');
    my @strings;
    while (@strings < $count_env + $count_args) {
        my $nul = index($control, "\0");
        if ($nul < 0) { read_more() or fail('exec.pl: the request ended early'); next }
        push @strings, substr($control, 0, $nul);
        substr($control, 0, $nul + 1) = '';
    }
    return ([@strings[0 .. $count_env - 1]], [@strings[$count_env .. $#strings]]);
}

sub read_more {
    my $n = sysread($ctl, $control, 65536, length $control);
    return $n if defined $n || $! != EINTR;
    return 1;
}

sub start_time {
    open(my $fh, '<', "/proc/$pid/stat") or return '';
    my $stat = <$fh> // '';
    $stat =~ s/^.*\) //s;
    return (split / /, $stat)[19] // '';
}

my $pidfd = syscall($sys->{pidfd_open}, $pid, 0);
$pidfd >= 0 or fail('the container is not running');
start_time() eq $opt{'start-time'} or fail('the container is not running');

# user first: once inside the container's user namespace we hold the capabilities that
# entering its other namespaces needs. mnt last: it changes what paths mean.
my @namespaces = (['user', 0x10000000], ['ipc', 0x08000000], ['uts', 0x04000000],
                  ['pid', 0x20000000], ['mnt', 0x00020000]);
my @handles;
for my $ns (@namespaces) {
    my ($kind, $flag) = @$ns;
    open(my $fh, '<', "/proc/$pid/ns/$kind") or fail("cannot open the container's $kind namespace: $!");
    # The user namespace is entered only when it differs (privileged containers share ours).
    if ($kind eq 'user') {
        my @theirs = stat $fh;
        my @ours = stat "/proc/self/ns/user";
        next if @ours && $theirs[1] == $ours[1] && $theirs[0] == $ours[0];
    }
    push @handles, [$fh, $flag, $kind];
}
syscall($sys->{pidfd_send_signal}, $pidfd, 0, 0, 0) == 0 or fail('the container is not running');
for my $handle (@handles) {
    my ($fh, $flag, $kind) = @$handle;
    syscall($sys->{setns}, fileno($fh), $flag) == 0 or fail("cannot enter the container's $kind namespace: $!");
    close $fh;
}
my $groups = pack('L', 0);
syscall($sys->{setresgid}, 0, 0, 0) == 0 or fail("setresgid: $!");
syscall($sys->{setgroups}, 1, $groups) == 0 or fail("setgroups: $!");
syscall($sys->{setresuid}, 0, 0, 0) == 0 or fail("setresuid: $!");
syscall($sys->{close}, $pidfd);

# The command's side: a pty from the container's own devpts (/dev/ptmx is pts/ptmx in
# its /dev, which we now see), or three pipes.
my ($master, @inner, @outer);
if ($pty) {
    sysopen($master, '/dev/ptmx', O_RDWR | O_NOCTTY) or fail("cannot open /dev/ptmx in the container (-T runs the command on pipes): $!");
    my $unlock = pack('i', 0);
    ioctl($master, TIOCSPTLCK, $unlock) or fail("cannot unlock the container's pty: $!");
    my $slave = syscall($sys->{ioctl}, fileno($master), TIOCGPTPEER, O_RDWR | O_NOCTTY);
    if ($slave < 0) {
        # Before Linux 4.13: by number, in the container's devpts.
        my $number = pack('I', 0);
        ioctl($master, TIOCGPTN, $number) or fail("cannot find the container's pty: $!");
        sysopen(my $fh, '/dev/pts/' . unpack('I', $number), O_RDWR | O_NOCTTY) or fail("cannot open the container's pty: $!");
        $slave = syscall($sys->{dup3}, fileno($fh), 200, 0);
        close $fh;
        $slave >= 0 or fail("dup: $!");
    }
    @inner = ($slave, $slave, $slave);
} else {
    pipe(my $in_r, my $in_w) or fail("pipe: $!");
    pipe(my $out_r, my $out_w) or fail("pipe: $!");
    pipe(my $err_r, my $err_w) or fail("pipe: $!");
    @inner = ($in_r, $out_w, $err_w);
    @outer = ($in_w, $out_r, $err_r);
}
apply_control() if $pty;

# Both ends close on exec: an exec that works closes the write end, one that fails says why.
pipe(my $failed_r, my $failed_w) or fail("pipe: $!");
$SIG{PIPE} = 'IGNORE';
my $child = fork() // fail("fork: $!");
if ($child == 0) {
    $SIG{PIPE} = 'DEFAULT';
    syscall($sys->{setsid}) >= 0 or child_fail(1, "setsid: $!");
    my @fds = map { ref $_ ? fileno($_) : $_ } @inner;
    if ($pty) { syscall($sys->{ioctl}, $fds[0], TIOCSCTTY, 0) == 0 or child_fail(1, "cannot make the pty the controlling terminal: $!") }
    for my $target (0, 1, 2) {
        next if $fds[$target] == $target;
        syscall($sys->{dup3}, $fds[$target], $target, 0) == $target or child_fail(1, "dup: $!");
    }
    # Everything above 2 closes at exec, the failure pipe included.
    if (syscall($sys->{close_range}, 3, 0xFFFFFFFF, CLOSE_RANGE_CLOEXEC) != 0) {
        opendir(my $dir, '/proc/self/fd') or child_fail(1, "cannot list /proc/self/fd: $!");
        my @open = grep { /^[0-9]+$/ && $_ > 2 && $_ != fileno($failed_w) } readdir $dir;
        closedir $dir;
        syscall($sys->{close}, 0 + $_) for @open;
    }
    chdir $opt{cwd} or child_fail(1, "cannot change to directory $opt{cwd} in the container: $!");
    umask 022;
    %ENV = ();
    for my $pair (@$env) {
        my ($key, $value) = split /=/, $pair, 2;
        $ENV{$key} = $value;
    }
    { no warnings 'exec'; exec { $command->[0] } @$command }
    my $error = "$!";
    # As shells do: 127 when no such command exists (even if some PATH entry was
    # unreadable, which makes execvp report EACCES), 126 when it exists but cannot run.
    my $exists = $command->[0] =~ m{/} ? -e $command->[0] : grep { -e "$_/$command->[0]" } split /:/, ($ENV{PATH} // '/usr/bin:/bin');
    child_fail($exists ? 126 : 127, "cannot run $command->[0]: " . ($exists || $command->[0] =~ m{/} ? $error : 'command not found'));
}

sub child_fail {
    my ($code, $why) = @_;
    syswrite $failed_w, "$code $why";
    exit $code;
}

# The parent: only the session's descriptors and our side of the command's.
close $failed_w;
if ($pty) { syscall($sys->{close}, $inner[0]) } else { close $_ for @inner }
my $failure = '';
while (1) {
    my $n = sysread($failed_r, $failure, 4096, length $failure);
    last unless $n || (!defined $n && $! == EINTR);
}
close $failed_r;
if ($failure =~ /^([0-9]+) (.*)$/s) {
    print STDERR "Error: $2\n";
    waitpid($child, 0);
    exit $1;
}
syswrite $ctl, "started\n";

# Signals sent to the CLI reach the command (with a pty, Ctrl-C reaches it as a byte
# through the pty's line discipline instead).
for my $sig (qw(TERM INT HUP QUIT USR1 USR2)) {
    $SIG{$sig} = sub { kill $sig, $child };
}
my $child_fd = syscall($sys->{pidfd_open}, $child, 0);
if ($child_fd < 0) {
    kill 'KILL', $child;
    fail("pidfd_open: $!");
}
relay();
waitpid($child, 0) == $child or exit 1;
exit($? & 127 ? 128 + ($? & 127) : $? >> 8);

# Window sizes from the control socket, applied to the pty: the kernel then sends
# SIGWINCH to its foreground process group. End of file: the CLI is gone, and so is
# whoever used this session; the command is hung up on.
sub apply_control {
    while ($control =~ s/^([^\n]*)\n//) {
        my $line = $1;
        if ($pty && $line =~ /^winsize ([0-9]+) ([0-9]+)$/) {
            my $size = pack('S4', $1, $2, 0, 0);
            ioctl($master, TIOCSWINSZ, $size);
        }
    }
}

sub nonblocking {
    my ($fh, $on) = @_;
    my $flags = fcntl($fh, F_GETFL, 0) // return;
    fcntl($fh, F_SETFL, $on ? $flags | O_NONBLOCK : $flags & ~O_NONBLOCK);
}

# Copies bytes between the session and the command: stdin to the pty (or the stdin
# pipe), the pty (or the stdout and stderr pipes) to stdout (and stderr), until the
# command has exited. Then what is readable at once is passed on and the session ends:
# processes the command left behind do not hold it open.
sub relay {
    my @streams = $pty
        ? ({ from => \*STDIN, to => $master, input => 1 }, { from => $master, to => \*STDOUT })
        : ({ from => \*STDIN, to => $outer[0], input => 1 }, { from => $outer[1], to => \*STDOUT }, { from => $outer[2], to => \*STDERR });
    for my $s (@streams) {
        $s->{buffer} = '';
        nonblocking($s->{from}, 1);
        nonblocking($s->{to}, 1);
    }
    my $ctl_open = 1;
    # After a hang-up, when the command must be gone (SIGKILL to its process group): a
    # command that ignores SIGHUP would otherwise keep this helper, and the session, for good.
    my $kill_at;
    while (1) {
        my ($rin, $win) = ('', '');
        for my $s (grep { !$_->{done} } @streams) {
            vec($rin, fileno($s->{from}), 1) = 1 if !$s->{eof} && length($s->{buffer}) < 65536;
            vec($win, fileno($s->{to}), 1) = 1 if length $s->{buffer};
        }
        vec($rin, fileno($ctl), 1) = 1 if $ctl_open;
        vec($rin, $child_fd, 1) = 1;
        my ($rout, $wout) = ($rin, $win);
        my $timeout = defined $kill_at ? ($kill_at > time ? $kill_at - time : 0) : undef;
        my $ready = select($rout, $wout, undef, $timeout);
        if (defined $kill_at && time >= $kill_at) {
            kill 'KILL', -$child;
            kill 'KILL', $child;
            undef $kill_at;
        }
        if ($ready < 0) {
            next if $! == EINTR;
            last;
        }
        next if $ready == 0;
        last if vec($rout, $child_fd, 1);
        if ($ctl_open && vec($rout, fileno($ctl), 1)) {
            my $n = sysread($ctl, $control, 4096, length $control);
            if (defined $n && $n == 0) {
                # The CLI is gone, and so is whoever used this session: hang up on the command.
                $ctl_open = 0;
                kill 'HUP', -$child;
                kill 'HUP', $child;
                $kill_at = time + HANGUP_GRACE_SECONDS;
            }
            apply_control();
        }
        for my $s (grep { !$_->{done} } @streams) {
            pull($s) if vec($rout, fileno($s->{from}), 1);
            push_out($s) if vec($wout, fileno($s->{to}), 1);
            finish($s) if $s->{eof} && !length $s->{buffer};
        }
    }
    # The command has exited: what it wrote before is readable now; pass it on, waiting
    # for the CLI to take it.
    for my $s (grep { !$_->{done} && !$_->{input} } @streams) {
        $s->{empty} = 0;
        pull($s) until $s->{eof} || length($s->{buffer}) >= 1 << 20 || $s->{empty};
        nonblocking($s->{to}, 0);
        push_out($s) while length $s->{buffer} && !$s->{done};
    }
}

sub pull {
    my $s = shift;
    my $n = sysread($s->{from}, $s->{buffer}, 65536, length $s->{buffer});
    if (defined $n) {
        # End of file, or (from a pty master) EIO once no slave is open.
        $s->{eof} = 1 if $n == 0;
    } elsif ($! == EAGAIN) {
        $s->{empty} = 1;
    } elsif ($! != EINTR) {
        $s->{eof} = 1;
    }
}

sub push_out {
    my $s = shift;
    my $n = syswrite($s->{to}, $s->{buffer});
    if (defined $n) {
        substr($s->{buffer}, 0, $n) = '';
    } elsif ($! != EAGAIN && $! != EINTR) {
        # The reader is gone (EPIPE): drop what it would have got; a command writing to
        # a pipe finds out as it would anywhere.
        $s->{buffer} = '';
        $s->{done} = 1;
        close $s->{from} unless $pty || $s->{input};
    }
}

# The end of the session's stdin is passed on as the end of the command's (on a pty the
# command keeps its terminal).
sub finish {
    my $s = shift;
    $s->{done} = 1;
    close $s->{to} if $s->{input} && !$pty;
}
