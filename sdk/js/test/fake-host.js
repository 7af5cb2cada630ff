// A stand-in for the host's imports in unit tests: records every call in `calls` and
// answers from `host.answer(name, ...args)`, which a test sets.
export const host = {
  calls: [],
  answer: () => undefined,
  state: null,
};

const call = (name) => (...args) => {
  host.calls.push([name, ...args]);
  return host.answer(name, ...args);
};

export const open = call('open');
export const write = call('write');
export const progress = call('progress');
export const report = call('report');
export const save = (state) => {
  host.calls.push(['save', state]);
  host.state = state;
};
export const last = () => {
  host.calls.push(['last']);
  return host.state ?? undefined;
};
