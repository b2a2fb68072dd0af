#!/usr/bin/perl
# Stands in for systemd's socket units in tests: holds the guest and admin sockets
# listening, and runs the daemon with them as fds 3 and 4 (LISTEN_FDS=2,
# LISTEN_FDNAMES=guest:admin, LISTEN_PID set to the daemon's pid), as systemd does.
# The sockets stay open while the daemon is down, so connections queue. A line "start"
# on stdin starts the daemon again once it has exited; end of stdin stops everything.
# Usage: activate.pl GUEST_SOCKET ADMIN_SOCKET -- COMMAND...
use strict;
use warnings;
use IO::Socket::UNIX;
use POSIX ();

my ($guest_path, $admin_path, $dashes, @command) = @ARGV;
die "usage: activate.pl GUEST ADMIN -- COMMAND...\n" unless defined $dashes && $dashes eq '--' && @command;
unlink $guest_path, $admin_path;
umask 0;
my $guest = IO::Socket::UNIX->new(Local => $guest_path, Listen => 128) or die "listen $guest_path: $!\n";
my $admin = IO::Socket::UNIX->new(Local => $admin_path, Listen => 128) or die "listen $admin_path: $!\n";
chmod 0666, $guest_path;
chmod 0660, $admin_path;
$| = 1;

my $child;
sub start {
    $child = fork() // die "fork: $!\n";
    return print "started $child\n" if $child;
    # Move the sockets to 3 and 4 through spare descriptors: dup and dup2 give descriptors
    # without close-on-exec, so they survive the exec.
    my ($g, $a) = (POSIX::dup(fileno $guest), POSIX::dup(fileno $admin));
    POSIX::dup2($g, 3) // die;
    POSIX::dup2($a, 4) // die;
    @ENV{qw(LISTEN_FDS LISTEN_FDNAMES LISTEN_PID)} = (2, 'guest:admin', $$);
    exec @command or die "exec: $!\n";
}

start();
while (my $line = <STDIN>) {
    chomp $line;
    next unless $line eq 'start';
    waitpid($child, 0);
    start();
}
kill 'TERM', $child;
waitpid($child, 0);
