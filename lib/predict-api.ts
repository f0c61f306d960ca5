import { Duration, Stack } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { suppress } from './nag.ts';
import { nodeFunction } from './node-function.ts';

export interface PredictApiProps {
  /** Endpoint the Lambda invokes (and the only one it may invoke). */
  readonly endpointName: string;
  readonly endpointArn: string;
  /** `apiKey`: API key + usage plan; `iam`: SigV4-signed requests. @default 'apiKey' */
  readonly auth?: 'apiKey' | 'iam';
  /** Requests per second (stage and usage plan). @default 10 */
  readonly rateLimit?: number;
  /** @default 20 */
  readonly burstLimit?: number;
  /** Requests per API key per day (apiKey auth). @default 10000 */
  readonly quotaPerDay?: number;
  /** API Gateway's limit for REST integrations is 29 s. @default Duration.seconds(29) */
  readonly integrationTimeout?: Duration;
  /** Empty: no CORS (no preflight method, no CORS headers). @default ['*'] */
  readonly corsAllowOrigins?: string[];
  readonly logRetentionDays: number;
  /**
   * `false` (strict): the handler leaves the predicted label out of its log line (env
   * LOG_PREDICTIONS=false). @default true
   */
  readonly logPredictions?: boolean;
  /** `false` (strict): the access log leaves out the caller's IP address. @default true */
  readonly logCallerIp?: boolean;
  /** X-Ray tracing on the stage (strict). @default false */
  readonly tracing?: boolean;
  /** Run the handler in the VPC (strict): it then reaches SageMaker through the VPC endpoint. @default outside */
  readonly network?: {
    readonly vpc: ec2.IVpc;
    readonly subnets: ec2.ISubnet[];
    readonly securityGroup: ec2.ISecurityGroup;
  };
}

const CORS_HEADERS = ['Content-Type', 'X-Api-Key', 'Authorization', 'X-Amz-Date', 'X-Amz-Security-Token'];

/**
 * HTTPS API: `POST /predict` (JPEG/PNG bytes or JSON instances) -> predict Lambda ->
 * InvokeEndpoint. Authenticated and throttled by default, validated, access-logged, CORS-enabled.
 */
export class PredictApi extends Construct {
  readonly api: apigw.RestApi;
  readonly handler: NodejsFunction;
  /** Undefined with IAM auth. */
  readonly apiKey?: apigw.IApiKey;
  readonly url: string;

  constructor(scope: Construct, id: string, props: PredictApiProps) {
    super(scope, id);
    const auth = props.auth ?? 'apiKey';
    const rateLimit = props.rateLimit ?? 10;
    const burstLimit = props.burstLimit ?? 20;
    const timeout = props.integrationTimeout ?? Duration.seconds(29);
    if (timeout.toSeconds() > 29) throw new Error('API Gateway integration timeout must be <= 29 s');
    const origins = props.corsAllowOrigins ?? ['*'];

    this.handler = nodeFunction(this, 'Handler', {
      entry: 'lambda/predict/handler.ts',
      description: 'POST /predict: validates the request and calls the SageMaker endpoint',
      logRetentionDays: props.logRetentionDays,
      // One second less than API Gateway, so the Lambda can still answer with a clear error.
      timeout: Duration.seconds(Math.max(3, timeout.toSeconds() - 1)),
      memorySize: 512,
      environment: {
        ENDPOINT_NAME: props.endpointName,
        CORS_ALLOW_ORIGIN: origins.join(','),
        ...(props.logPredictions === false ? { LOG_PREDICTIONS: 'false' } : {}),
      },
      ...(props.network ? { vpc: props.network } : {}),
    });
    this.handler.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['sagemaker:InvokeEndpoint'], resources: [props.endpointArn] }),
    );

    const accessLogs = new logs.LogGroup(this, 'AccessLogs', { retention: props.logRetentionDays });
    this.api = new apigw.RestApi(this, 'Api', {
      // API Gateway's metrics are keyed by this name (and the stage): unique per stack, so two
      // stacks in one account do not share alarms and dashboard graphs.
      restApiName: `${Stack.of(this).stackName}-predict`,
      description: 'Brain tumor MRI classifier',
      endpointTypes: [apigw.EndpointType.REGIONAL],
      binaryMediaTypes: ['image/jpeg', 'image/png'],
      cloudWatchRole: false,
      deployOptions: {
        stageName: 'prod',
        accessLogDestination: new apigw.LogGroupLogDestination(accessLogs),
        accessLogFormat:
          props.logCallerIp === false
            ? // The standard fields but the source IP; the caller's identity stays (audit).
              apigw.AccessLogFormat.jsonWithStandardFields({
                caller: true,
                httpMethod: true,
                ip: false,
                protocol: true,
                requestTime: true,
                resourcePath: true,
                responseLength: true,
                status: true,
                user: true,
              })
            : apigw.AccessLogFormat.jsonWithStandardFields(),
        ...(props.tracing ? { tracingEnabled: true } : {}),
        throttlingRateLimit: rateLimit,
        throttlingBurstLimit: burstLimit,
        metricsEnabled: true,
      },
      ...(origins.length > 0
        ? {
            defaultCorsPreflightOptions: {
              allowOrigins: origins,
              allowMethods: ['POST', 'OPTIONS'],
              allowHeaders: CORS_HEADERS,
              maxAge: Duration.hours(1),
            },
          }
        : {}),
    });
    // API Gateway's own rejections (bad key, throttled, invalid body) get the app's error shape
    // and CORS headers, so a browser client can read them.
    // A gateway response cannot echo the caller's origin: with several origins the first is sent.
    // Without CORS origins they carry no CORS header.
    const corsOrigin = `'${origins.includes('*') ? '*' : origins[0]}'`;
    for (const [key, type] of [
      ['Default4xx', apigw.ResponseType.DEFAULT_4XX],
      ['Default5xx', apigw.ResponseType.DEFAULT_5XX],
    ] as const) {
      this.api.addGatewayResponse(key, {
        type,
        ...(origins.length > 0 ? { responseHeaders: { 'Access-Control-Allow-Origin': corsOrigin } } : {}),
        templates: {
          'application/json':
            '{"error":{"code":"$context.error.responseType","message":$context.error.messageString}}',
        },
      });
    }

    const validator = this.api.addRequestValidator('Validator', {
      validateRequestBody: true,
      validateRequestParameters: true,
    });
    const jsonModel = this.api.addModel('InstancesRequest', {
      contentType: 'application/json',
      schema: {
        schema: apigw.JsonSchemaVersion.DRAFT4,
        type: apigw.JsonSchemaType.OBJECT,
        required: ['instances'],
        properties: { instances: { type: apigw.JsonSchemaType.ARRAY, minItems: 1 } },
      },
    });
    const predict = this.api.root.addResource('predict');
    const method = predict.addMethod(
      'POST',
      new apigw.LambdaIntegration(this.handler, { proxy: true, timeout }),
      {
        apiKeyRequired: auth === 'apiKey',
        authorizationType: auth === 'iam' ? apigw.AuthorizationType.IAM : apigw.AuthorizationType.NONE,
        requestValidator: validator,
        requestParameters: { 'method.request.header.Content-Type': true },
        requestModels: { 'application/json': jsonModel },
      },
    );

    if (auth === 'apiKey') {
      this.apiKey = this.api.addApiKey('ApiKey', { description: 'Brain tumor API client key' });
      const plan = this.api.addUsagePlan('UsagePlan', {
        description: 'Throttle and daily quota per API key',
        throttle: { rateLimit, burstLimit },
        quota: { limit: props.quotaPerDay ?? 10_000, period: apigw.Period.DAY },
        apiStages: [{ api: this.api, stage: this.api.deploymentStage }],
      });
      plan.addApiKey(this.apiKey);
      suppress(method, [
        {
          id: 'AwsSolutions-APIG4',
          reason:
            'Default auth is an API key with a throttled, quota-limited usage plan (the API serves machine clients); set apiAuth=iam for SigV4 authorization.',
        },
        {
          id: 'AwsSolutions-COG4',
          reason: 'No Cognito user pool: clients authenticate with an API key (or SigV4 with apiAuth=iam).',
        },
      ]);
    } else {
      suppress(method, [
        {
          id: 'AwsSolutions-COG4',
          reason: 'The method uses IAM (SigV4) authorization instead of a Cognito user pool.',
        },
      ]);
    }
    suppress(this.api.deploymentStage, [
      {
        id: 'AwsSolutions-APIG3',
        reason:
          'Requests are authenticated and throttled per key and per stage; a WAF web ACL (about $5+/month) can be attached to the stage where the API is exposed to untrusted networks.',
      },
      {
        id: 'AwsSolutions-APIG6',
        reason:
          "Access logging is on for the stage; execution logging needs an account-wide API Gateway CloudWatch role, which this app does not create on the account's behalf.",
      },
    ]);
    this.url = this.api.urlForPath('/predict');
  }
}
