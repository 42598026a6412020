// Runs when node-gyp could not build the addon at install: the TypeScript backend still works.
console.warn(
  'nuggets: the native addon did not build (needs g++, make and libopenblas-dev: ' +
    '"apt-get install -y build-essential libopenblas-dev liblapacke-dev", then "npm rebuild"). ' +
    'Falling back to the TypeScript backend, which is correct but slower.',
);
