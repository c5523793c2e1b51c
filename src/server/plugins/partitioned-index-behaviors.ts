/**
 * PostGraphile offers `filter` and `orderBy` only on indexed columns, but it
 * skips the check for partitioned tables (box_commands, metric_samples), which
 * would let clients filter and sort on any column — unindexed scans over
 * months of partitions. This applies the same rule to them: a column in no
 * (non-partial) index of the partitioned table gets neither.
 */
export const PartitionedIndexBehaviorsPlugin: GraphileConfig.Plugin = {
  name: "PartitionedIndexBehaviorsPlugin",
  version: "1.0.0",
  after: ["PgIndexBehaviorsPlugin"],
  gather: {
    hooks: {
      pgCodecs_attribute(_info, { pgAttribute, attribute }) {
        const table = pgAttribute.getClass();
        if (table?.relkind !== "p") return;
        const indexed = table
          .getIndexes()
          .some((index) => !index.indpred && index.getKeys().some((key) => key?.attname === pgAttribute.attname));
        if (!indexed) {
          attribute.extensions ??= Object.create(null);
          if (attribute.extensions !== undefined && !("isIndexed" in attribute.extensions)) attribute.extensions.isIndexed = false;
        }
      },
    },
  },
};
