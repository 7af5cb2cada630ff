// Module resolution hook: every `migrun:plugin/…` import is the fake host.
export async function resolve(specifier, context, next) {
  if (specifier.startsWith('migrun:')) {
    return { url: new URL('./fake-host.js', import.meta.url).href, shortCircuit: true };
  }
  return next(specifier, context);
}
