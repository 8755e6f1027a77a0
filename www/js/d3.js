// d3 v7, loaded by index.html as a classic script (www/vendor/d3.min.js, copied from npm by scripts/build.sh).
export default globalThis.d3;
