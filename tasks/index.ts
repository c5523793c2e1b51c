/**
 * Every graphile-worker task, by identifier. One file per task in this folder;
 * the crontab at the repository root schedules the recurring ones.
 */
import type { TaskList } from "graphile-worker";
import { boxTasks } from "./boxes.ts";

export const taskList: TaskList = { ...boxTasks };
