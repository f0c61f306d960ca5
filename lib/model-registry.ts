import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sagemaker from 'aws-cdk-lib/aws-sagemaker';
import { Construct } from 'constructs';
import type { ApprovalThresholds } from '../lambda/model-registry/gate.ts';
import { suppress } from './nag.ts';
import { nodeFunction } from './node-function.ts';

export interface ModelRegistryProps {
  /** Lower-case name prefix shared with the training jobs. */
  readonly namePrefix: string;
  /** The approval gate: every score must reach its threshold. */
  readonly thresholds: ApprovalThresholds;
  readonly logRetentionDays: number;
  /** RETAIN keeps the group (and its packages) when the stack is deleted. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The SageMaker model registry: one model package group, and the function the training state
 * machine calls to register each trained model with its Testing evaluation, Approved when the
 * thresholds hold and PendingManualApproval otherwise. Approving or rejecting a package later
 * (console or `aws sagemaker update-model-package`) is what deploys or rolls back the endpoint.
 */
export class ModelRegistry extends Construct {
  readonly groupName: string;
  readonly groupArn: string;
  readonly registerFunction: lambda.IFunction;

  constructor(scope: Construct, id: string, props: ModelRegistryProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.groupName = `${props.namePrefix}-models`;
    const group = new sagemaker.CfnModelPackageGroup(this, 'Group', {
      modelPackageGroupName: this.groupName,
      modelPackageGroupDescription: 'Brain tumor MRI classifiers, each with its Testing evaluation',
    });
    group.applyRemovalPolicy(props.removalPolicy ?? RemovalPolicy.RETAIN);
    this.groupArn = group.attrModelPackageGroupArn;
    const packages = stack.formatArn({
      service: 'sagemaker',
      resource: 'model-package',
      resourceName: `${this.groupName}/*`,
    });

    const register = nodeFunction(this, 'Register', {
      entry: 'lambda/model-registry/register.ts',
      description: 'Registers a trained model with its evaluation; the approval gate sets its status',
      logRetentionDays: props.logRetentionDays,
      timeout: Duration.minutes(1),
      environment: {
        MODEL_PACKAGE_GROUP: this.groupName,
        APPROVAL_THRESHOLDS: JSON.stringify(props.thresholds),
      },
    });
    register.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['sagemaker:DescribeTrainingJob'],
        resources: [
          stack.formatArn({
            service: 'sagemaker',
            resource: 'training-job',
            resourceName: `${props.namePrefix}-*`,
          }),
        ],
      }),
    );
    register.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['sagemaker:CreateModelPackage'],
        // CreateModelPackage is authorised on the package (and on its group).
        resources: [packages, group.attrModelPackageGroupArn],
      }),
    );
    suppress(register.role as iam.Role, [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          "Package versions and job names are assigned at run time; the wildcards stay inside this stack's package group and job-name prefix.",
        findings: [
          `Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:training-job/${props.namePrefix}-*`,
          `Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:model-package/${this.groupName}/*`,
        ],
      },
    ]);
    this.registerFunction = register;
  }
}
