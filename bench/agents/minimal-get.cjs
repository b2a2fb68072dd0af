// The baseline of the cold-start benchmark: the least a Node script can do to print a
// config value from /dev/apollo/sock. No argument parsing, no retries, no error mapping.
require('node:http').get({ socketPath: '/dev/apollo/sock', path: `/1.0/config/${process.argv[2]}`, headers: { Host: 'apollo' } }, (res) => {
  res.pipe(process.stdout);
});
