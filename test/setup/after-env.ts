import { afterAll } from "@jest/globals";
import { closePools } from "../helpers/db.ts";

afterAll(closePools);
