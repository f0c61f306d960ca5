import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/** The VPC's address range: 2 x /20 isolated subnets (4,091 addresses each) are carved from it. */
export const VPC_CIDR = '10.40.0.0/16';

/** Where SageMaker runs a job or a model: the subnets and the security group of its network interfaces. */
export interface SageMakerNetwork {
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.ISubnet[];
  readonly securityGroup: ec2.ISecurityGroup;
}

export interface NetworkProps {
  readonly logRetentionDays: number;
  /** Availability zones (one isolated subnet each). @default 2 */
  readonly maxAzs?: number;
  /** @default RemovalPolicy.RETAIN (the flow-log group) */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The strict configuration's network: a VPC with isolated subnets only (no internet gateway, no
 * NAT; jobs and models already run with network isolation), and the VPC endpoints through which
 * SageMaker and the predict Lambda reach AWS:
 *
 * - S3 (gateway endpoint, free): datasets, model artifacts, checkpoints, data capture;
 * - ECR API and ECR Docker (interface): the image;
 * - CloudWatch Logs and CloudWatch monitoring (interface): job and endpoint logs and metrics;
 * - STS (interface): credentials for the execution roles;
 * - SageMaker Runtime (interface): the predict Lambda's InvokeEndpoint.
 *
 * No SageMaker API endpoint: nothing inside the VPC calls it (the control-plane Lambdas run
 * outside). Flow logs of all traffic go to a log group; the VPC's default security group is
 * emptied.
 */
export class Network extends Construct implements SageMakerNetwork {
  readonly vpc: ec2.Vpc;
  readonly subnets: ec2.ISubnet[];
  /** Training jobs' and models' network interfaces. */
  readonly securityGroup: ec2.SecurityGroup;
  /** Shared by the interface endpoints: HTTPS from inside the VPC. */
  readonly endpointsSecurityGroup: ec2.SecurityGroup;
  readonly interfaceEndpoints: Record<string, ec2.InterfaceVpcEndpoint> = {};

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);
    const flowLogs = new logs.LogGroup(this, 'FlowLogs', {
      retention: props.logRetentionDays as logs.RetentionDays,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(VPC_CIDR),
      maxAzs: props.maxAzs ?? 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'Isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 20 }],
      restrictDefaultSecurityGroup: true,
      gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
    });
    this.vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs, this.flowLogRole(flowLogs)),
      trafficType: ec2.FlowLogTrafficType.ALL,
    });
    this.subnets = this.vpc.isolatedSubnets;

    this.endpointsSecurityGroup = new ec2.SecurityGroup(this, 'EndpointsSecurityGroup', {
      vpc: this.vpc,
      description: 'Interface VPC endpoints: HTTPS from inside the VPC',
      allowAllOutbound: false,
    });
    // The literal range (not the VPC's attribute), so the rule can be checked at synth.
    this.endpointsSecurityGroup.addIngressRule(
      ec2.Peer.ipv4(VPC_CIDR),
      ec2.Port.tcp(443),
      'HTTPS from the VPC',
    );
    const services: Record<string, ec2.InterfaceVpcEndpointAwsService> = {
      EcrApi: ec2.InterfaceVpcEndpointAwsService.ECR,
      EcrDocker: ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
      Logs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
      Monitoring: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
      Sts: ec2.InterfaceVpcEndpointAwsService.STS,
      SageMakerRuntime: ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME,
    };
    for (const [name, service] of Object.entries(services)) {
      this.interfaceEndpoints[name] = this.vpc.addInterfaceEndpoint(name, {
        service,
        privateDnsEnabled: true,
        securityGroups: [this.endpointsSecurityGroup],
        open: false,
        subnets: { subnets: this.subnets },
      });
    }

    this.securityGroup = new ec2.SecurityGroup(this, 'SageMakerSecurityGroup', {
      vpc: this.vpc,
      description: 'SageMaker training jobs and models: HTTPS out (the subnets route only to the VPC and S3)',
      allowAllOutbound: false,
    });
    // The subnets route nowhere but the VPC and the S3 gateway endpoint, whose addresses are S3's
    // public ranges (a region-specific prefix list): HTTPS to any address reaches only those.
    this.securityGroup.addEgressRule(
      ec2.Peer.anyIpv4(),
      ec2.Port.tcp(443),
      'HTTPS to the VPC endpoints and S3 (no other route)',
    );
    // No ingress: jobs run on one instance, and the endpoint is reached through SageMaker's
    // own front end, never on the model's network interfaces.
  }

  /**
   * A security group for a Lambda in the VPC that may reach only HTTPS inside the VPC: the
   * interface endpoints (nothing else in it listens). An inline rule to the VPC's range rather
   * than a rule to the endpoints' group: CloudFormation keeps a group's default allow-all egress
   * unless the group itself lists its egress rules.
   */
  lambdaSecurityGroup(scope: Construct, id: string, description: string): ec2.SecurityGroup {
    const sg = new ec2.SecurityGroup(scope, id, { vpc: this.vpc, description, allowAllOutbound: false });
    sg.addEgressRule(ec2.Peer.ipv4(VPC_CIDR), ec2.Port.tcp(443), 'HTTPS to the VPC endpoints');
    return sg;
  }

  /** The flow-log delivery role: writes to the one log group (CDK's default role also gets PassRole on itself). */
  private flowLogRole(group: logs.LogGroup): iam.Role {
    const role = new iam.Role(this, 'FlowLogRole', {
      assumedBy: new iam.ServicePrincipal('vpc-flow-logs.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
      description: 'VPC flow logs: writes to its one log group',
    });
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
        // The group's ARN attribute ends in `:*`: the group's streams.
        resources: [group.logGroupArn],
      }),
    );
    return role;
  }
}

/**
 * What a SageMaker execution role needs to run in the VPC: SageMaker creates and deletes the
 * job's or model's network interfaces in it with the role's permissions. The EC2 actions that
 * take no resource are Describe* (resource `*`); the others are limited to this VPC.
 */
export function grantSageMakerVpcAccess(role: iam.IGrantable, network: SageMakerNetwork): void {
  const stack = Stack.of(network.vpc);
  role.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: [
        'ec2:DescribeNetworkInterfaces',
        'ec2:DescribeVpcs',
        'ec2:DescribeDhcpOptions',
        'ec2:DescribeSubnets',
        'ec2:DescribeSecurityGroups',
      ],
      resources: ['*'],
    }),
  );
  role.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: [
        'ec2:CreateNetworkInterface',
        'ec2:CreateNetworkInterfacePermission',
        'ec2:DeleteNetworkInterface',
        'ec2:DeleteNetworkInterfacePermission',
      ],
      resources: ['*'],
      conditions: {
        ArnEquals: {
          'ec2:Vpc': stack.formatArn({ service: 'ec2', resource: 'vpc', resourceName: network.vpc.vpcId }),
        },
      },
    }),
  );
}
