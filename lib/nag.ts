import { type CfnElement, Stack, Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/**
 * A cdk-nag finding this app accepts, with the reason. cdk-nag 3 acknowledges findings through
 * CDK's Validations API, one exact id per finding (`AwsSolutions-IAM5[Resource::*]`); an
 * acknowledgement covers the construct and everything below it.
 */
export interface Suppression {
  readonly id: string;
  readonly reason: string;
  /** Exact finding ids (the part in brackets); the whole rule when omitted. */
  readonly findings?: readonly string[];
}

export function suppress(scope: IConstruct, suppressions: readonly Suppression[]): void {
  for (const { id, reason, findings } of suppressions) {
    const ids = findings ? findings.map((f) => `${id}[${f}]`) : [id];
    Validations.of(scope).acknowledge(...ids.map((ackId) => ({ id: ackId, reason })));
  }
}

/** How cdk-nag spells `Fn::GetAtt [resource, Arn]` inside a finding id. */
export function arnRef(resource: IConstruct): string {
  const element = (resource.node.defaultChild ?? resource) as CfnElement;
  return `<${Stack.of(resource).getLogicalId(element)}.Arn>`;
}
