#!/usr/bin/perl
# Runs a command inside a running devapollo container, for `devapollo exec`.
#
# Like nsenter, but safe against a recycled pid and with signal forwarding:
#  - the init is pinned with a pidfd first, its start time is checked against the one the
#    daemon recorded, the namespace files are opened, and only then is the pidfd checked
#    again: if the init still runs, the namespaces opened are its own;
#  - setns() needs a single-threaded process (Node is not), hence Perl from perl-base;
#  - entering a pid namespace only affects children, so this process forks; it stays in
#    the host's pid namespace, forwards signals to the command and exits with its status
#    (128+N when the command dies of signal N).
# Usage: exec.pl --pid PID --start-time TICKS [--cwd DIR] -- CMD [ARG...]
use strict;
use warnings;
use Config;

my %syscalls = (
    'x86_64'  => { setns => 308, setresuid => 117, setresgid => 119, setgroups => 116,
                   pidfd_open => 434, pidfd_send_signal => 424 },
    'aarch64' => { setns => 268, setresuid => 147, setresgid => 149, setgroups => 159,
                   pidfd_open => 434, pidfd_send_signal => 424 },
);
my ($arch) = $Config{archname} =~ /^([^-]+)/;
my $sys = $syscalls{$arch} or fail("unsupported architecture $arch");

sub fail { print STDERR "Error: $_[0]\n"; exit 1 }

my (%opt, @cmd);
while (@ARGV) {
    my $arg = shift @ARGV;
    if ($arg eq '--') { @cmd = @ARGV; last }
    elsif ($arg =~ /^--(pid|start-time|cwd)$/) { $opt{$1} = shift @ARGV }
    else { fail("exec.pl: unknown argument $arg") }
}
defined $opt{pid} && defined $opt{'start-time'} && @cmd or fail('exec.pl: --pid, --start-time and a command are required');
my $pid = 0 + $opt{pid};

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
close_fd($pidfd);

my @forwarded = qw(TERM INT HUP QUIT USR1 USR2 WINCH CONT);
my $child = fork() // fail("fork: $!");
if ($child == 0) {
    chdir(defined $opt{cwd} && -d $opt{cwd} ? $opt{cwd} : '/') or chdir '/';
    { no warnings 'exec'; exec { $cmd[0] } @cmd }
    my $error = "$!";
    # As shells do: 127 when no such command exists (even if some PATH entry was
    # unreadable, which makes execvp report EACCES), 126 when it exists but cannot run.
    my $exists = $cmd[0] =~ m{/} ? -e $cmd[0] : grep { -e "$_/$cmd[0]" } split /:/, ($ENV{PATH} // '/usr/bin:/bin');
    print STDERR $exists ? "Error: cannot run $cmd[0]: $error\n" : "Error: cannot run $cmd[0]: command not found\n";
    exit($exists ? 126 : 127);
}
for my $sig (@forwarded) {
    $SIG{$sig} = sub { kill $sig, $child };
}
while (1) {
    my $done = waitpid($child, 0);
    last if $done == $child;
    exit 1 if $done == -1;
}
exit($? & 127 ? 128 + ($? & 127) : $? >> 8);

sub close_fd {
    my $fd = shift;
    my $fh;
    close $fh if open($fh, '<&=', $fd);
}
