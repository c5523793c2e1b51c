/**
 * `login` returns null instead of raising when the credentials are refused,
 * so that its transaction commits the attempt it records (and the lockout
 * count). This plugin turns that null into the one error every refusal gets,
 * after the transaction has committed.
 */
import { lambda, object, SafeError, type ExecutableStep } from "postgraphile/grafast";
import { wrapPlans } from "postgraphile/utils";

export const LOGIN_FAILED_MESSAGE =
  "Sign-in failed: wrong email, username or password, or the account is locked for 15 minutes after 5 failures in a row";

interface PayloadStep extends ExecutableStep {
  get(key: "result"): ExecutableStep & { get(attribute: "token"): ExecutableStep };
}

export const LoginFailurePlugin = wrapPlans({
  Mutation: {
    login(plan) {
      const $payload = plan() as PayloadStep;
      const $result = $payload.get("result");
      const $refused = lambda($result.get("token"), (token) => {
        if (token == null) throw new SafeError(LOGIN_FAILED_MESSAGE, { code: "LOGIN_FAILED" });
        return false;
      });
      return object({ result: $result, refused: $refused });
    },
  },
});
