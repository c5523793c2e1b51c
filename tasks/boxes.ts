/** The tasks of the boxes module (issue 4), spread into the task list. */
import type { TaskList } from "graphile-worker";
import { boxCommandsSweep } from "./box_commands_sweep.ts";
import { boxPartitionsMaintain } from "./box_partitions_maintain.ts";
import { boxPresenceSweep } from "./box_presence_sweep.ts";

export const boxTasks: TaskList = {
  box_commands_sweep: boxCommandsSweep,
  box_partitions_maintain: boxPartitionsMaintain,
  box_presence_sweep: boxPresenceSweep,
};
