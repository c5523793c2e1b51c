/**
 * PostgreSQL has a geometric type called `box`, which PostGraphile names `Box`
 * in GraphQL — the name our `app_public.boxes` table wants. The geometric type
 * (which nothing here uses) becomes `GeometricBox`.
 */
export const GeometricBoxNamePlugin: GraphileConfig.Plugin = {
  name: "GeometricBoxNamePlugin",
  version: "1.0.0",
  inflection: {
    replace: {
      builtin(previous, _options, text) {
        return previous!(text === "Box" ? "GeometricBox" : text);
      },
    },
  },
};
