import json, os, subprocess, sys, select, time
# usage: harvest_py.py PACKAGE VERSION LICENCE -- CMD...
name, version, lic = sys.argv[1], sys.argv[2], sys.argv[3]
cmd = sys.argv[sys.argv.index('--')+1:]
env = dict(os.environ); env.update({"CLICKHOUSE_HOST":"localhost","CLICKHOUSE_USER":"x","CLICKHOUSE_PASSWORD":"x"})
p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd='/tmp')
buf=b''; results={}
def send(o): p.stdin.write((json.dumps(o)+'\n').encode()); p.stdin.flush()
def pump(deadline, want):
    global buf
    while time.time()<deadline and not all(i in results for i in want):
        r,_,_=select.select([p.stdout],[],[],0.2)
        if not r:
            if p.poll() is not None: return
            continue
        chunk=os.read(p.stdout.fileno(),1<<20)
        if not chunk: return
        buf+=chunk
        while b'\n' in buf:
            line,buf=buf.split(b'\n',1)
            try: m=json.loads(line)
            except Exception: continue
            if 'id' in m: results[m['id']]=m
send({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"moat-corpus","version":"0"}}})
pump(time.time()+40,[1])
if 1 not in results: print('FAIL', name); p.kill(); sys.exit(1)
send({"jsonrpc":"2.0","method":"notifications/initialized"})
for i,m in [(2,"tools/list"),(3,"prompts/list"),(4,"resources/templates/list")]: send({"jsonrpc":"2.0","id":i,"method":m,"params":{}})
pump(time.time()+20,[2,3,4]); p.kill()
init=results[1].get('result',{})
g=lambda i,k: results.get(i,{}).get('result',{}).get(k,[])
doc={"source":{"package":name,"version":version,"registry":"pypi","license":lic,"how":"tools/list over stdio from the published package"},
     "instructions":init.get('instructions'),"tools":g(2,'tools'),"prompts":g(3,'prompts'),"resourceTemplates":g(4,'resourceTemplates')}
json.dump(doc,open('/tmp/harvest/out/pypi__'+name+'.json','w'),indent=1,ensure_ascii=False)
print('OK',name,len(doc['tools']))
