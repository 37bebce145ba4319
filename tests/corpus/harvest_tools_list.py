import json, os, subprocess, sys, select, time
pkgdir = os.path.abspath(sys.argv[1])
spec = os.path.basename(pkgdir)
name, _, version = sys.argv[2].rpartition('@')
mod = os.path.join(pkgdir, 'node_modules', name)
pj = json.load(open(os.path.join(mod, 'package.json')))
bins = pj.get('bin')
if isinstance(bins, str): entry = bins
elif isinstance(bins, dict): entry = list(bins.values())[0]
else: entry = pj.get('main', 'index.js')
extra = {
 '@modelcontextprotocol/server-filesystem': ['/tmp'],
 '@modelcontextprotocol/server-postgres': ['postgresql://localhost/x'],
 '@modelcontextprotocol/server-redis': ['redis://localhost:6379'],
 '@modelcontextprotocol/server-everything': ['stdio'],
 '@benborla29/mcp-server-mysql': [],
}.get(name, [])
env = dict(os.environ)
for k in ['GITHUB_PERSONAL_ACCESS_TOKEN','GITLAB_PERSONAL_ACCESS_TOKEN','SLACK_BOT_TOKEN','SLACK_TEAM_ID','BRAVE_API_KEY','GOOGLE_MAPS_API_KEY','EVERART_API_KEY','STRIPE_SECRET_KEY','FIRECRAWL_API_KEY','TAVILY_API_KEY','EXA_API_KEY','CIRCLECI_TOKEN','PRIVATE_APP_ACCESS_TOKEN','HEROKU_API_KEY','FIGMA_API_KEY','MAPBOX_ACCESS_TOKEN','NEON_API_KEY','SUPABASE_ACCESS_TOKEN','OPENAPI_MCP_HEADERS','NOTION_TOKEN','ES_API_KEY','AWS_ACCESS_KEY_ID','AWS_SECRET_ACCESS_KEY']:
    env.setdefault(k, 'dummy')
env['ES_URL']='http://localhost:9200'; env['MYSQL_HOST']='127.0.0.1'; env['AWS_REGION']='us-east-1'
cmd = ['node', os.path.join(mod, entry)] + extra
if name == '@stripe/mcp': cmd += ['--tools=all', '--api-key=sk_test_dummy']
if name == 'figma-developer-mcp': cmd += ['--stdio']
if name == '@azure-devops/mcp': cmd += ['dummyorg']
if name == '@supabase/mcp-server-supabase': cmd += ['--access-token=dummy']
p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd='/tmp')
def send(o):
    p.stdin.write((json.dumps(o)+'\n').encode()); p.stdin.flush()
buf=b''; results={}
def pump(deadline):
    global buf
    while time.time()<deadline:
        r,_,_=select.select([p.stdout],[],[],0.2)
        if not r:
            if p.poll() is not None: return
            continue
        chunk=os.read(p.stdout.fileno(), 1<<20)
        if not chunk: return
        buf+=chunk
        while b'\n' in buf:
            line,buf=buf.split(b'\n',1)
            try: m=json.loads(line)
            except Exception: continue
            if 'id' in m and ('result' in m or 'error' in m): results[m['id']]=m
        if all(i in results for i in want): return
want=[1]
send({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"moat-corpus","version":"0"}}})
pump(time.time()+40)
if 1 not in results:
    print('FAIL init', name); p.kill(); sys.exit(1)
send({"jsonrpc":"2.0","method":"notifications/initialized"})
want=[2,3,4]
send({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}})
send({"jsonrpc":"2.0","id":3,"method":"prompts/list","params":{}})
send({"jsonrpc":"2.0","id":4,"method":"resources/templates/list","params":{}})
pump(time.time()+30)
p.kill()
init=results[1].get('result',{})
doc={"source":{"package":name,"version":version,"registry":"npm","license":pj.get('license'),"how":"tools/list over stdio from the published package, started with dummy credentials"},
     "instructions":init.get('instructions'),
     "tools":results.get(2,{}).get('result',{}).get('tools',[]),
     "prompts":results.get(3,{}).get('result',{}).get('prompts',[]),
     "resourceTemplates":results.get(4,{}).get('result',{}).get('resourceTemplates',[])}
out='/tmp/harvest/out/'+name.replace('/','__').replace('@','')+'.json'
json.dump(doc,open(out,'w'),indent=1,ensure_ascii=False)
print('OK', name, len(doc['tools']), 'tools')
