// Validates a HAR file with Debian's node-har-validator: prints "valid" or the schema errors
// (exit 1). Used by the spliff tests; run as NODE_PATH=/usr/share/nodejs node validate-har.js F.
const fs = require('fs');
const validate = require('har-validator/lib/promise');
const har = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
validate.har(har).then(() => { console.log('valid'); }).catch((e) => {
  console.error(JSON.stringify(e.errors || e.message, null, 1)); process.exit(1);
});
