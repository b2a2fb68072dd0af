#!/usr/bin/perl
# Starts one devapollo container. Run by the daemon as host root, in a new session, with
# stdout/stderr on the container's log and fd 3 a socket to the daemon.
#
# Why Perl: the set-up needs unshare, mount, sethostname and setns in a single-threaded
# process (setns into a mount namespace fails in multi-threaded Node), and perl-base is
# part of every Debian system, so no compiler and no extra package is needed. Only core
# syscall() is used, no modules beyond perl-base.
#
# Steps (why this order matters):
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
#  4. Exec a tiny init that reaps orphans and runs the command, if any.
# Protocol on fd 3: we send "pid N" and then "ready" or "error MESSAGE"; the daemon
# answers "go" once it has registered the container. This process then exits: the init
# is adopted by the host's init, so an idle container costs one small process.
use strict;
use warnings;

use Config;

my %syscalls = (
    'x86_64'  => { unshare => 272, mount => 165, sethostname => 170, setresuid => 117,
                   setresgid => 119, setgroups => 116, setsid => 112 },
    'aarch64' => { unshare => 97, mount => 40, sethostname => 161, setresuid => 147,
                   setresgid => 149, setgroups => 159, setsid => 157 },
);
my ($arch) = $Config{archname} =~ /^([^-]+)/;
my $sys = $syscalls{$arch} or die "container.pl: unsupported architecture $arch\n";

use constant {
    CLONE_NEWNS => 0x00020000, CLONE_NEWUTS => 0x04000000, CLONE_NEWIPC => 0x08000000,
    CLONE_NEWUSER => 0x10000000, CLONE_NEWPID => 0x20000000,
    MS_RDONLY => 1, MS_NOSUID => 2, MS_NODEV => 4, MS_NOEXEC => 8, MS_REMOUNT => 32,
    MS_BIND => 4096, MS_MOVE => 8192, MS_REC => 16384, MS_PRIVATE => 1 << 18,
};

my (%opt, @cmd);
while (@ARGV) {
    my $arg = shift @ARGV;
    if ($arg eq '--') { @cmd = @ARGV; last }
    elsif ($arg =~ /^--(name|stage|devapollo|uid-map|gid-map)$/) { $opt{$1} = shift @ARGV }
    elsif ($arg eq '--lxd-compat') { $opt{'lxd-compat'} = 1 }
    else { die "container.pl: unknown argument $arg\n" }
}
defined $opt{$_} or die "container.pl: --$_ is required\n" for qw(name stage);

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
    close $up_w;
    close $down_r;
    $0 = 'init';
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
exit 0;

# pid 1 of every container: reaps whatever is orphaned into it, runs the command if one
# was given (the container stops when it exits, with its status), forwards signals to it,
# and otherwise idles until SIGTERM. Kept tiny: it lives as long as the container.
sub init_script {
    return <<'INIT';
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
    $child = fork() // die "init: fork: $!\n";
    if ($child == 0) {
        $SIG{$_} = 'DEFAULT' for qw(CHLD TERM INT HUP QUIT USR1 USR2);
        close $wake_r; close $wake_w;
        exec { $ARGV[0] } @ARGV;
        print STDERR "init: cannot run $ARGV[0]: $!\n";
        exit 127;
    }
}
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
}
