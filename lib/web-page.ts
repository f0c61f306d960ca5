import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { CfnOutput } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import { Construct } from 'constructs';
import { webPagePolicy } from './local/api-gateway-adapter.ts';
import { suppress } from './nag.ts';

/** The page's files (`index.html` + `app.js`), the ones the local API serves. */
export const WEB_PAGE_DIR = path.resolve(import.meta.dirname, '../web');

const SCRIPT_TAG = '<script type="module" src="./app.js"></script>';
/** The policy goes right after this tag, before anything it governs. */
const META_ANCHOR = '<meta charset="utf-8">';

/**
 * web/index.html with web/app.js inlined (one response, no second route), and a
 * Content-Security-Policy `<meta>` tag that allows exactly that script by its hash. (A meta tag,
 * not a header: API Gateway's static header values are quoted with `'`, which the policy uses.)
 */
export function inlinedWebPage(dir = WEB_PAGE_DIR): { html: string; policy: string } {
  const html = readFileSync(path.join(dir, 'index.html'), 'utf8');
  const script = readFileSync(path.join(dir, 'app.js'), 'utf8');
  if (!html.includes(SCRIPT_TAG)) throw new Error(`web/index.html must load its module as ${SCRIPT_TAG}`);
  if (/<\/script/i.test(script)) throw new Error('web/app.js must not contain "</script" (it is inlined)');
  const hash = createHash('sha256').update(script, 'utf8').digest('base64');
  const policy = webPagePolicy(`'sha256-${hash}'`, { meta: true });
  if (!html.includes(META_ANCHOR)) throw new Error(`web/index.html must have ${META_ANCHOR}`);
  return {
    html: html
      .replace(
        META_ANCHOR,
        () => `${META_ANCHOR}\n<meta http-equiv="Content-Security-Policy" content="${policy}">`,
      )
      .replace(SCRIPT_TAG, () => `<script type="module">${script}</script>`),
    policy,
  };
}

export interface WebPageProps {
  /** The REST API whose `POST /predict` the page calls (API-key auth: the user pastes the key). */
  readonly api: apigw.RestApi;
}

/**
 * `GET /` on the predict API: the web page, answered by API Gateway itself (a mock integration,
 * no Lambda, no bucket). The page is public; every prediction it sends carries the API key the user
 * pastes, so it has exactly the API's authentication. Not for `apiAuth=iam`: a browser cannot
 * SigV4-sign without AWS credentials, so that API needs a signing proxy in front of the page.
 */
export class WebPage extends Construct {
  readonly url: string;

  constructor(scope: Construct, id: string, props: WebPageProps) {
    super(scope, id);
    const { html } = inlinedWebPage();
    // The body goes through a VTL mapping template, where `$` and `#` are syntax: base64 keeps
    // the page byte-exact and $util.base64Decode restores it.
    const template = `$util.base64Decode("${Buffer.from(html, 'utf8').toString('base64')}")`;
    const headers = {
      'Content-Type': "'text/html; charset=utf-8'",
      'X-Frame-Options': "'DENY'",
      'Cache-Control': "'no-cache'",
      'X-Content-Type-Options': "'nosniff'",
    };
    const method = props.api.root.addMethod(
      'GET',
      new apigw.MockIntegration({
        requestTemplates: { 'application/json': '{"statusCode": 200}' },
        integrationResponses: [
          {
            statusCode: '200',
            responseParameters: Object.fromEntries(
              Object.entries(headers).map(([k, v]) => [`method.response.header.${k}`, v]),
            ),
            // Chosen by the request's Accept header; browsers ask for text/html first.
            responseTemplates: { 'text/html': template, 'application/json': template },
          },
        ],
      }),
      {
        authorizationType: apigw.AuthorizationType.NONE,
        apiKeyRequired: false,
        methodResponses: [
          {
            statusCode: '200',
            responseParameters: Object.fromEntries(
              Object.keys(headers).map((k) => [`method.response.header.${k}`, true]),
            ),
          },
        ],
      },
    );
    suppress(method, [
      {
        id: 'AwsSolutions-APIG4',
        reason:
          'GET / returns the static web page (no data, no model call); the page sends the API key with every POST /predict, which keeps its authorization.',
      },
      {
        id: 'AwsSolutions-COG4',
        reason: 'GET / returns the static web page; predictions are authorized by the API key.',
      },
    ]);
    this.url = props.api.urlForPath('/');
    new CfnOutput(this, 'Url', { value: this.url, description: 'The web page (paste the API key there)' });
  }
}
