import type { Provider } from 'aws-cdk-lib/custom-resources';
import type { IConstruct } from 'constructs';
import { arnRef, suppress } from './nag.ts';

/** The cdk-nag findings on aws-cdk-lib's Provider framework, acknowledged with the reason. */
export function suppressProviderFindings(provider: Provider, handlers: IConstruct[]): void {
  // The framework's own functions (isComplete/onTimeout exist only with an isComplete handler).
  const framework = ['framework-onEvent', 'framework-isComplete', 'framework-onTimeout'].flatMap((id) => {
    const child = provider.node.tryFindChild(id);
    return child ? [child] : [];
  });
  const waits = provider.node.tryFindChild('waiter-state-machine') !== undefined;
  suppress(provider, [
    {
      id: 'AwsSolutions-IAM5',
      reason:
        "CDK Provider framework: `<function ARN>:*` covers the versions of this construct's own handler functions, which it must invoke.",
      findings: [...handlers, ...framework].map((fn) => `Resource::${arnRef(fn)}:*`),
    },
    {
      id: 'AwsSolutions-IAM4',
      reason:
        'CDK Provider framework functions: AWSLambdaBasicExecutionRole only lets them write their own CloudWatch logs.',
      findings: ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole'],
    },
    {
      id: 'AwsSolutions-L1',
      reason: 'CDK Provider framework functions: their runtime is chosen by aws-cdk-lib, not by this app.',
    },
    ...(waits
      ? [
          {
            id: 'AwsSolutions-SF1',
            reason:
              'The Provider waiter state machine only re-invokes isComplete on a timer; every poll is already logged by the isComplete Lambda.',
          },
          {
            id: 'AwsSolutions-SF2',
            reason: 'X-Ray tracing of a polling loop adds cost and no insight; the Lambdas log every poll.',
          },
        ]
      : []),
  ]);
}
