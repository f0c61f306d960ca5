import path from 'node:path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { REPO_ROOT } from './config.ts';
import { suppress } from './nag.ts';

/**
 * The Node major we deploy: the container image runs the same one (training-container/Dockerfile).
 * Development and tests run on 20 and 22 (package.json engines), so nothing newer than 22 is used.
 */
export const LAMBDA_RUNTIME = lambda.Runtime.NODEJS_22_X;

export interface NodeFunctionProps {
  /** Handler file relative to the repository root; it must export `handler`. */
  readonly entry: string;
  readonly description: string;
  readonly logRetentionDays: number;
  readonly environment?: Record<string, string>;
  /** @default Duration.seconds(30) */
  readonly timeout?: Duration;
  /** @default 256 */
  readonly memorySize?: number;
  /** Run in these subnets of a VPC with this security group (strict). @default outside any VPC */
  readonly vpc?: {
    readonly vpc: ec2.IVpc;
    readonly subnets: ec2.ISubnet[];
    readonly securityGroup: ec2.ISecurityGroup;
  };
}

/**
 * A Node 22 Lambda bundled locally by esbuild (never Docker), with its own log group and its
 * own role that may write only to that log group; callers grant anything else explicitly.
 */
export function nodeFunction(scope: Construct, id: string, props: NodeFunctionProps): NodejsFunction {
  const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
    retention: props.logRetentionDays as logs.RetentionDays,
    removalPolicy: RemovalPolicy.DESTROY,
  });
  const role = new iam.Role(scope, `${id}Role`, {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    description: `${props.description} (Lambda execution role)`,
  });
  logGroup.grantWrite(role);
  if (props.vpc) {
    // What Lambda needs to attach the function to the VPC (AWSLambdaVPCAccessExecutionRole's
    // actions); Lambda checks them on the role when the function is created, for resource `*`.
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: [
          'ec2:CreateNetworkInterface',
          'ec2:DescribeNetworkInterfaces',
          'ec2:DescribeSubnets',
          'ec2:DeleteNetworkInterface',
          'ec2:AssignPrivateIpAddresses',
          'ec2:UnassignPrivateIpAddresses',
        ],
        resources: ['*'],
      }),
    );
    suppress(role, [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          "Lambda manages the function's network interfaces in the VPC with these EC2 actions and checks them for resource * on the role (AWSLambdaVPCAccessExecutionRole grants the same).",
        findings: ['Resource::*'],
      },
    ]);
  }
  const fn = new NodejsFunction(scope, id, {
    entry: path.join(REPO_ROOT, props.entry),
    handler: 'handler',
    description: props.description,
    runtime: LAMBDA_RUNTIME,
    architecture: lambda.Architecture.ARM_64,
    memorySize: props.memorySize ?? 256,
    timeout: props.timeout ?? Duration.seconds(30),
    role,
    logGroup,
    projectRoot: REPO_ROOT,
    depsLockFilePath: path.join(REPO_ROOT, 'package-lock.json'),
    environment: { NODE_OPTIONS: '--enable-source-maps', ...props.environment },
    ...(props.vpc
      ? {
          vpc: props.vpc.vpc,
          vpcSubnets: { subnets: props.vpc.subnets },
          securityGroups: [props.vpc.securityGroup],
        }
      : {}),
    bundling: {
      format: OutputFormat.ESM,
      target: 'node22',
      minify: true,
      sourceMap: true,
      mainFields: ['module', 'main'],
      // Bundled CommonJS dependencies may still call require() for Node built-ins.
      banner: "import{createRequire}from'node:module';const require=createRequire(import.meta.url);",
    },
  });
  suppress(fn, [
    {
      id: 'AwsSolutions-L1',
      reason:
        'Node.js 22 (LTS) is what the container image runs and the newest Node the project is tested on; cdk-nag L1 wants nodejs24.x, which nothing here is tested against yet.',
    },
  ]);
  return fn;
}
